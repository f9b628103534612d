"""Issue 9: booking through the Python API against a process per booking. N
`FollowUps.schedule_post_event` calls in one process (the installed package's interpreter;
one connection pool reused), against N `followup schedule post-event` processes one after
another. Every call must schedule."""

from __future__ import annotations

from bench.context import Context
from bench.measure import BenchFailure, summarize
from bench.pgdb import query
from bench.report import Row


def run(ctx: Context) -> None:
    n = ctx.sizes.api_calls
    with ctx.server.scratch("api", template=ctx.template) as db:
        proc = ctx.worker("api_calls.py", ctx.server.url(db), str(n), "api",
                          python=ctx.followup.python)
        doc = proc.json()
        if doc["statuses"] != {"scheduled": n}:
            raise BenchFailure(f"API calls: {doc['statuses']}")
        walls = [float(w) for w in doc["walls"]]
        api_rate = n / float(doc["total"])
        ctx.log(f"API: {api_rate:,.0f} calls/s; now {n:,} processes")
        cli: list[float] = []
        for i in range(n):
            done = ctx.followup_run(db, "schedule", "post-event", "--user-id", f"cliu{i}",
                                    "--conversation-id", f"clic{i}", "--event-date",
                                    "2030-06-01T18:00", "--booking-id", f"cliB{i}", "--json")
            if done.json().get("status") != "scheduled":
                raise BenchFailure(f"schedule post-event: {done.stdout[:200]}")
            cli.append(done.wall)
        total = int(query(ctx.server, db, "SELECT count(*) FROM scheduled_followups")[0][0])
        if total != 2 * n:
            raise BenchFailure(f"{total} follow-ups after {2 * n} bookings")
    cli_rate = n / sum(cli)
    ctx.add(Row("api", f"{n:,} FollowUps.schedule_post_event calls, one process (per call)",
                summarize(walls), "s",
                note=f"{api_rate:,.0f} calls/s; process start and pool set-up "
                     f"{float(doc['setup']):.2f} s not counted"))
    ctx.add(Row("api", f"{n:,} followup schedule post-event processes (per call)",
                summarize(cli), "s", note=f"{cli_rate:,.1f} calls/s, one after another"))
    ctx.add(Row("api", "API calls/s / process calls/s", summarize([api_rate / cli_rate]),
                "×"))

"""The same burst through followup and its peers, in the same run: N due deliveries that
append the same JSON line to a file. followup: `run-due` processes until drained.
APScheduler 3.10 with its SQLAlchemyJobStore on PostgreSQL: N date jobs due at one instant,
drained by its default 10-thread executor, once with its defaults (which drop late jobs: the
table says how many) and once with misfire_grace_time=None (which must deliver all).
procrastinate: N deferred jobs drained by one worker process with its defaults. Goal:
followup ≥ 5× APScheduler and ≥ 50× procrastinate."""

from __future__ import annotations

from bench.context import Context
from bench.measure import BenchFailure, compare, file_ids, require_exactly_once, summarize
from bench.pgdb import insert_due, status_counts
from bench.report import Row
from bench.scenarios.run_due import check, drain_followup


def followup(ctx: Context, tag: str) -> float:
    n = ctx.sizes.peers
    with ctx.server.scratch("peer_followup", template=ctx.template) as db:
        ids = insert_due(ctx.server, db, n, prefix=tag)
        out = ctx.tmp / f"{tag}.jsonl"
        seconds, _ = drain_followup(ctx, db, out)
        check(ctx, "peers: followup", db, ids, out)
        out.unlink()
        return n / seconds


def apscheduler(ctx: Context, tag: str, no_drop: bool) -> tuple[float, int, bool]:
    """(executed jobs/s, jobs dropped, started late)."""
    n = ctx.sizes.peers
    with ctx.server.scratch("peer_aps") as db:
        url = ctx.server.url(db)
        added = ctx.worker("apscheduler_peer.py", "add", url, str(n),
                           *(["--no-drop"] if no_drop else [])).json()
        out = ctx.tmp / f"{tag}.jsonl"
        doc = ctx.worker("apscheduler_peer.py", "work", url, str(n), str(added["due_at"]),
                         str(out)).json()
        seen = file_ids(out)
        ids = [f"a-{i:07d}" for i in range(1, n + 1)]
        executed = int(doc["executed"])
        dropped = int(doc["missed"]) + int(doc["max_instances"])
        if not doc.get("finished") or doc.get("error"):
            raise BenchFailure(f"APScheduler did not finish its jobs: {doc}")
        if no_drop:
            require_exactly_once("peers: APScheduler (misfire_grace_time=None)", ids, seen)
        else:
            found = compare(ids, seen)
            if found.duplicated or found.unexpected or found.received != executed:
                raise BenchFailure(f"EXACTLY-ONCE VIOLATED in peers: APScheduler defaults: "
                                   f"{found.describe()}")
        out.unlink()
        return executed / float(doc["drain_seconds"]), dropped, bool(doc["late_start"])


def procrastinate(ctx: Context, tag: str) -> float:
    n = ctx.sizes.peers
    with ctx.server.scratch("peer_procrastinate") as db:
        url = ctx.server.url(db)
        ctx.worker("procrastinate_peer.py", "setup", url, str(n))
        out = ctx.tmp / f"{tag}.jsonl"
        proc = ctx.worker("procrastinate_peer.py", "work", url, str(n), str(out),
                          timeout=3600)
        require_exactly_once("peers: procrastinate", [f"p-{i:07d}" for i in range(1, n + 1)],
                             file_ids(out))
        states = status_counts(ctx.server, db, "procrastinate_jobs")
        if states != {"succeeded": n}:
            raise BenchFailure(f"EXACTLY-ONCE VIOLATED in peers: procrastinate job states "
                               f"{states}")
        out.unlink()
        return n / proc.wall


def run(ctx: Context) -> None:
    n = ctx.sizes.peers
    ours: list[float] = []
    aps: list[float] = []
    aps_default: list[float] = []
    dropped: list[float] = []
    late = 0
    pro: list[float] = []
    for i in range(ctx.runs):
        ours.append(followup(ctx, f"pf{i}"))
        rate, _, was_late = apscheduler(ctx, f"pa{i}", no_drop=True)
        aps.append(rate)
        late += was_late
        rate, lost, was_late = apscheduler(ctx, f"pd{i}", no_drop=False)
        aps_default.append(rate)
        dropped.append(lost)
        late += was_late
        pro.append(procrastinate(ctx, f"pp{i}"))
        ctx.log(f"peers run {i + 1}: followup {ours[-1]:,.0f}/s, APScheduler {aps[-1]:,.0f}/s "
                f"(defaults: {aps_default[-1]:,.0f}/s, {lost} of {n:,} dropped), "
                f"procrastinate {pro[-1]:,.0f}/s")
    ctx.add(Row("peers", f"followup run-due processes, {n:,} due", summarize(ours), "jobs/s",
                note="file sender, default options, no ANALYZE after the insert"))
    ctx.add(Row("peers", "APScheduler 3.10 + SQLAlchemyJobStore, misfire_grace_time=None",
                summarize(aps), "jobs/s",
                note="from the due instant to the last job; its start-up not counted"
                     + ("; a worker started after the due instant" if late else "")))
    ctx.add(Row("peers", "APScheduler 3.10, defaults: jobs dropped as misfired",
                summarize(dropped), "jobs", note=f"of {n:,}; the rest ran at "
                f"{summarize(aps_default).median:,.0f}/s; a dropped job is only logged"))
    ctx.add(Row("peers", "procrastinate, one worker process, defaults", summarize(pro),
                "jobs/s", note="whole worker process; jobs deferred beforehand"))
    over_aps = [a / b for a, b in zip(ours, aps, strict=True)]
    over_pro = [a / b for a, b in zip(ours, pro, strict=True)]
    ctx.add(Row("peers", "followup / APScheduler (delivering all)", summarize(over_aps), "×",
                goal="≥ 5×", met=ctx.judge(summarize(over_aps).median >= 5)))
    ctx.add(Row("peers", "followup / procrastinate", summarize(over_pro), "×", goal="≥ 50×",
                met=ctx.judge(summarize(over_pro).median >= 50)))

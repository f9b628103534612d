"""Issue 9: the booking path during bulk work. While `schedule import` of a large file runs,
`followup schedule post-event` for other users, one started every 0.5 s: every call must
succeed, and the slowest must stay within 2× of the slowest of the same calls with no
import running."""

from __future__ import annotations

import threading
import time

from bench.context import Context
from bench.measure import BenchFailure, Proc, Summary, summarize
from bench.pgdb import query
from bench.report import Row
from bench.scenarios.importing import rows_file


def bookings(ctx: Context, db: str, prefix: str, running: threading.Thread | None
             ) -> tuple[list[float], int]:
    """Wall seconds of each call, and how many ended while `running` was still alive."""
    walls: list[float] = []
    overlapped = 0
    start = time.monotonic()
    for i in range(ctx.sizes.booking_calls):
        time.sleep(max(0.0, start + i * ctx.sizes.booking_interval - time.monotonic()))
        proc = ctx.followup_run(db, "schedule", "post-event", "--user-id", f"{prefix}{i}",
                                "--conversation-id", f"{prefix}c{i}",
                                "--event-date", "2030-06-01T18:00", "--json", timeout=120)
        if proc.json().get("status") != "scheduled":
            raise BenchFailure(f"schedule post-event {prefix}{i}: {proc.stdout[:200]}")
        walls.append(proc.wall)
        overlapped += running is not None and running.is_alive()
    return walls, overlapped


def wait_for_import(ctx: Context, db: str, thread: threading.Thread) -> None:
    """Until the import's session is at work in the database."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and thread.is_alive():
        if query(ctx.server, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE "
                 "datname = %s AND state <> 'idle'", (db,))[0][0]:
            return
        time.sleep(0.05)
    raise BenchFailure("the import never reached the database")


def one(ctx: Context, run_no: int) -> tuple[Summary, Summary, int, float]:
    n = ctx.sizes.booking_import
    path = rows_file(ctx, n, prefix="j")
    with ctx.server.scratch("booking", template=ctx.template) as db:
        quiet, _ = bookings(ctx, db, f"quiet{run_no}-", None)
        result: list[Proc | BenchFailure] = []

        def importer() -> None:
            try:
                result.append(ctx.followup_run(db, "schedule", "import", str(path), "--json",
                                               timeout=3600))
            except BenchFailure as failure:
                result.append(failure)

        thread = threading.Thread(target=importer)
        thread.start()
        try:
            wait_for_import(ctx, db, thread)
            busy, overlapped = bookings(ctx, db, f"busy{run_no}-", thread)
        finally:
            thread.join()
        done = result[0]
        if isinstance(done, BenchFailure):
            raise done
        if done.json().get("scheduled") != n:
            raise BenchFailure(f"the import scheduled {done.json().get('scheduled')} of {n}")
        total = int(query(ctx.server, db, "SELECT count(*) FROM scheduled_followups")[0][0])
        if total != n + 2 * ctx.sizes.booking_calls:
            raise BenchFailure(f"{total} follow-ups after the import and the bookings")
        return summarize(quiet), summarize(busy), overlapped, done.wall


def run(ctx: Context) -> None:
    calls, n = ctx.sizes.booking_calls, ctx.sizes.booking_import
    quiet_all: list[float] = []
    busy_all: list[float] = []
    ratio: list[float] = []
    overlaps: list[int] = []
    import_walls: list[float] = []
    for i in range(ctx.heavy_runs):
        quiet, busy, overlapped, wall = one(ctx, i)
        quiet_all += quiet.samples
        busy_all += busy.samples
        ratio.append(busy.high / quiet.high)
        overlaps.append(overlapped)
        import_walls.append(wall)
        ctx.log(f"booking run {i + 1}: quiet p50 {quiet.median:.3f} max {quiet.high:.3f}; "
                f"during import p50 {busy.median:.3f} max {busy.high:.3f} "
                f"({overlapped}/{calls} during the import, which took {wall:.1f} s)")
    label = f"schedule post-event, one every {ctx.sizes.booking_interval} s"
    quiet_s, busy_s = summarize(quiet_all), summarize(busy_all)
    ctx.add(Row("booking", f"{label}, no import (per call)", quiet_s, "s",
                note=f"p50 {quiet_s.median:.3f} s, max {quiet_s.high:.3f} s"))
    ctx.add(Row("booking", f"{label}, during a {n:,}-row import (per call)", busy_s, "s",
                note=f"p50 {busy_s.median:.3f} s, max {busy_s.high:.3f} s; every call "
                     f"succeeded; {min(overlaps)}/{calls} ended while the import ran "
                     f"({summarize(import_walls).median:.0f} s)"))
    ctx.add(Row("booking", "slowest call during the import / slowest without",
                summarize(ratio), "×", goal="≤ 2×",
                met=ctx.judge(summarize(ratio).median <= 2)))

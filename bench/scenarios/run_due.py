"""`followup run-due` as cron runs it (a fresh process, repeated until nothing is due) against
a raw psycopg2 SKIP LOCKED loop, on the same rows in the same run, with and without table
statistics. Every id must land in the file exactly once and every row end `executed`."""

from __future__ import annotations

from pathlib import Path

from bench.context import Context
from bench.measure import BenchFailure, file_ids, require_exactly_once, summarize
from bench.pgdb import has_statistics, insert_due, status_counts
from bench.report import Row

MAX_PASSES = 30


def left(ctx: Context, db: str) -> int:
    counts = status_counts(ctx.server, db)
    return counts.get("pending", 0) + counts.get("processing", 0)


def drain_followup(ctx: Context, db: str, out: Path, *args: str) -> tuple[float, int]:
    """Wall seconds of every pass until nothing is due, and the number of passes."""
    total, passes = 0.0, 0
    while True:
        proc = ctx.followup_run(db, "run-due", "--json", *args,
                                FOLLOWUP_SENDER=f"file:{out}")
        total += proc.wall
        passes += 1
        doc = proc.json()
        if doc.get("failed") or doc.get("retried"):
            raise BenchFailure(f"run-due: {doc.get('failed')} failed, {doc.get('retried')} "
                               f"retried with the file sender: {doc.get('problems')}")
        if left(ctx, db) == 0:
            return total, passes
        if passes >= MAX_PASSES or not doc.get("claimed"):
            raise BenchFailure(f"run-due did not drain: {left(ctx, db)} still due after "
                               f"{passes} passes")


def drain_raw(ctx: Context, db: str, out: Path) -> float:
    proc = ctx.worker("raw_loop.py", ctx.server.url(db), str(out), "1000")
    return proc.wall


def check(ctx: Context, what: str, db: str, ids: list[str], out: Path) -> None:
    require_exactly_once(what, ids, file_ids(out))
    counts = status_counts(ctx.server, db)
    if counts != {"executed": len(ids)}:
        raise BenchFailure(f"EXACTLY-ONCE VIOLATED in {what}: table states {counts}, "
                           f"expected {len(ids)} executed")


def one(ctx: Context, n: int, analyze: bool, contender: str, tag: str) -> tuple[float, int]:
    """(rows/s, passes) of one contender on freshly inserted rows in a fresh database."""
    with ctx.server.scratch("rundue", template=ctx.template) as db:
        ids = insert_due(ctx.server, db, n, prefix=tag, analyze=analyze)
        if has_statistics(ctx.server, db) != analyze:
            raise BenchFailure("table statistics are not as the scenario needs")
        out = ctx.tmp / f"{tag}.jsonl"
        if contender == "followup":
            seconds, passes = drain_followup(ctx, db, out)
        else:
            seconds, passes = drain_raw(ctx, db, out), 1
        check(ctx, f"run-due {contender} {n} rows", db, ids, out)
        out.unlink()
        return n / seconds, passes


def variant(ctx: Context, n: int, analyze: bool) -> tuple[list[float], list[float]]:
    ours: list[float] = []
    raw: list[float] = []
    passes: list[int] = []
    state = "with statistics (ANALYZE)" if analyze else "no statistics"
    for i in range(ctx.runs):
        # alternate who goes first, so neither always gets the warmer cache
        order = ("followup", "raw") if i % 2 == 0 else ("raw", "followup")
        for contender in order:
            rate, p = one(ctx, n, analyze, contender,
                          f"{contender[0]}{n}{'a' if analyze else 'n'}{i}")
            (ours if contender == "followup" else raw).append(rate)
            if contender == "followup":
                passes.append(p)
        ctx.log(f"run-due {n:,} {state} run {i + 1}: followup {ours[-1]:,.0f}/s, "
                f"raw {raw[-1]:,.0f}/s")
    label = f"{n:,} due, {state}"
    ratios = [a / b for a, b in zip(ours, raw, strict=True)]
    ctx.add(Row("run-due", f"{label}: followup run-due processes", summarize(ours), "rows/s",
                note=f"{max(passes)} pass(es), file sender, default options"))
    ctx.add(Row("run-due", f"{label}: raw psycopg2 loop, batch 1000", summarize(raw),
                "rows/s"))
    ctx.add(Row("run-due", f"{label}: followup / raw", summarize(ratios), "×",
                goal="≥ 0.5×", met=ctx.judge(summarize(ratios).median >= 0.5)))
    return ours, raw


def run(ctx: Context) -> None:
    sizes = ctx.sizes
    variant(ctx, sizes.run_due, analyze=True)
    variant(ctx, sizes.run_due, analyze=False)
    large_stats, _ = variant(ctx, sizes.run_due_large, analyze=True)
    large_cold, _ = variant(ctx, sizes.run_due_large, analyze=False)
    same = [a / b for a, b in zip(large_cold, large_stats, strict=True)]
    ctx.add(Row("run-due", f"{sizes.run_due_large:,} due: no statistics / with statistics",
                summarize(same), "×", goal="same rate (≥ 0.9×)",
                met=ctx.judge(summarize(same).median >= 0.9),
                note="rows bulk-inserted, as right after an import; autovacuum off"))

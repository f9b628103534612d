"""`followup run-due --concurrency C` against a real threaded HTTP receiver that answers
each webhook after 50 ms. Goal: at least 0.8 × C × 20 deliveries/s, and no spurious
failure (the receiver never fails, so every retried or failed send is one). Each id must
reach the receiver exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.context import WORKERS, Context
from bench.measure import BenchFailure, require_exactly_once, summarize
from bench.pgdb import insert_due, query
from bench.report import Row


class Receiver:
    """bench/workers/receiver.py in its own process (its own GIL, not the harness's)."""

    def __init__(self, ctx: Context, delay: float, counts: Path) -> None:
        self.counts = counts
        self.proc = subprocess.Popen([sys.executable, str(WORKERS / "receiver.py"),
                                      str(delay), str(counts)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=ctx.env())
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> Counter[str]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        if self.proc.wait(timeout=30) != 0:
            raise BenchFailure("the webhook receiver failed")
        doc = json.loads(self.counts.read_text())
        return Counter(doc["counts"])


def one(ctx: Context, concurrency: int, tag: str) -> tuple[float, int, float]:
    """(deliveries/s of the process, spurious failures, in-pass seconds)."""
    n = ctx.sizes.webhook
    with ctx.server.scratch("webhook", template=ctx.template) as db:
        ids = insert_due(ctx.server, db, n, prefix=tag, analyze=True)
        receiver = Receiver(ctx, ctx.sizes.webhook_delay, ctx.tmp / f"{tag}.json")
        try:
            proc = ctx.followup_run(
                db, "run-due", "--json", "--concurrency", str(concurrency),
                FOLLOWUP_SENDER=f"webhook:http://127.0.0.1:{receiver.port}/hook")
        finally:
            seen = receiver.stop()
        doc = proc.json()
        executed = {r[0] for r in query(ctx.server, db, "SELECT id FROM scheduled_followups "
                                        "WHERE status = 'executed'")}
        failures = int(doc.get("retried", 0)) + int(doc.get("failed", 0))
        # a send that failed on our side may still have reached the receiver: then it is
        # pending for a retry, and arrived once; anything executed must have arrived once
        # and nothing may arrive twice
        require_exactly_once(f"webhook C={concurrency}", executed,
                             Counter({k: v for k, v in seen.items() if k in executed}))
        twice = [k for k, v in seen.items() if v > 1]
        unknown = set(seen) - set(ids)
        if twice or unknown:
            raise BenchFailure(f"EXACTLY-ONCE VIOLATED in webhook C={concurrency}: "
                               f"{len(twice)} ids arrived twice, {len(unknown)} unknown")
        if len(executed) + failures != n:
            raise BenchFailure(f"webhook C={concurrency}: {len(executed)} executed and "
                               f"{failures} failed of {n}: {doc.get('problems')}")
        if failures:
            ctx.log(f"  spurious failures: {doc.get('problems')}")
        return len(executed) / proc.wall, failures, float(doc.get("seconds") or 0)


def run(ctx: Context) -> None:
    n = ctx.sizes.webhook
    for concurrency in ctx.sizes.concurrency:
        rates: list[float] = []
        failures: list[float] = []
        in_pass: list[float] = []
        for i in range(ctx.runs):
            rate, failed, seconds = one(ctx, concurrency, f"w{concurrency}-{i}")
            rates.append(rate)
            failures.append(failed)
            in_pass.append(seconds)
            ctx.log(f"webhook C={concurrency} run {i + 1}: {rate:,.0f}/s, {failed} failed")
        goal = 0.8 * concurrency / ctx.sizes.webhook_delay
        ideal = concurrency / ctx.sizes.webhook_delay
        ctx.add(Row("webhook", f"{n:,} due, 50 ms receiver, --concurrency {concurrency}",
                    summarize(rates), "rows/s", goal=f"≥ {goal:,.0f}/s (0.8 × C × 20)",
                    met=ctx.judge(summarize(rates).median >= goal),
                    note=f"{summarize(rates).median / ideal:.0%} of C × 20/s; in-pass "
                         f"{n / summarize(in_pass).median:,.0f}/s (whole process incl. "
                         "start-up in the median)"))
        ctx.add(Row("webhook", f"--concurrency {concurrency}: spurious failures per run "
                    f"of {n:,}", summarize(failures), "sends", goal="0 in every run",
                    met=ctx.judge(sum(failures) == 0),
                    note=f"{sum(failures):.0f} failed or retried in {ctx.runs} runs"))

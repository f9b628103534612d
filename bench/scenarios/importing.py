"""`followup schedule import FILE` as a whole process: rows/s against a raw COPY of the same
rows, already rendered, into the same table in the same run; and peak RSS (from the kernel)
at two sizes ten times apart, which must stay within 20 %."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

from bench.context import Context
from bench.measure import BenchFailure, summarize
from bench.pgdb import query
from bench.report import Row

EVENT = "2026-11-14T18:00"
MESSAGE = ("Hi! Thank you for celebrating with us on November 14, 2026. How did everything "
           "go? We'd be glad to hear your thoughts.")


def rows_file(ctx: Context, n: int, prefix: str = "i") -> Path:
    """n post-event bookings for n distinct users, as JSON Lines (made once a suite run)."""
    path = ctx.tmp / f"import-{prefix}-{n}.jsonl"
    if not path.exists():
        with path.open("w", encoding="utf-8") as out:
            for i in range(n):
                out.write(json.dumps({"type": "post_event", "user_id": f"{prefix}u{i}",
                                      "conversation_id": f"{prefix}c{i}",
                                      "event_date": EVENT, "booking_id": f"B-{i}"}) + "\n")
    return path


def rendered_file(ctx: Context, n: int) -> Path:
    """The same bookings as the table rows an import makes, as CSV for COPY."""
    path = ctx.tmp / f"rendered-{n}.csv"
    if not path.exists():
        at, due = "2026-11-14 18:00:00+00", "2026-11-15 18:00:00+00"
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            for i in range(n):
                data = json.dumps({"event_date": "2026-11-14T18:00:00+00:00",
                                   "booking_id": f"B-{i}", "custom_message": None,
                                   "delay_hours": 24})
                writer.writerow([str(uuid.uuid4()), f"ic{i}", f"iu{i}", "post_event", data,
                                 due, due, "pending", "post_event_neutral_emotion", MESSAGE,
                                 "2026-11-20 12:00:00+00", 0, at])
    return path


def pending(ctx: Context, db: str) -> int:
    return int(query(ctx.server, db, "SELECT count(*) FROM scheduled_followups "
                     "WHERE status = 'pending'")[0][0])


def import_once(ctx: Context, n: int) -> tuple[float, float]:
    """(rows/s, peak RSS MiB) of one `followup schedule import` in a fresh database."""
    path = rows_file(ctx, n)
    with ctx.server.scratch("import", template=ctx.template) as db:
        proc = ctx.followup_run(db, "schedule", "import", str(path), "--json",
                                timeout=3600)
        doc = proc.json()
        if doc.get("scheduled") != n or pending(ctx, db) != n:
            raise BenchFailure(f"schedule import of {n}: reported {doc.get('scheduled')}, "
                               f"{pending(ctx, db)} pending in the table")
        return n / proc.wall, proc.peak_rss_mib


def copy_once(ctx: Context, n: int) -> float:
    path = rendered_file(ctx, n)
    with ctx.server.scratch("copy", template=ctx.template) as db:
        proc = ctx.worker("raw_copy.py", ctx.server.url(db), str(path))
        if proc.json().get("copied") != n or pending(ctx, db) != n:
            raise BenchFailure(f"raw COPY of {n} rows copied {proc.json().get('copied')}")
        return n / proc.wall


def run(ctx: Context) -> None:
    small, large = ctx.sizes.import_rows, ctx.sizes.import_large
    rates: list[float] = []
    rss: list[float] = []
    copies: list[float] = []
    for i in range(ctx.runs):
        for step in (("import", "copy") if i % 2 == 0 else ("copy", "import")):
            if step == "import":
                rate, peak = import_once(ctx, small)
                rates.append(rate)
                rss.append(peak)
            else:
                copies.append(copy_once(ctx, small))
        ctx.log(f"import {small:,} run {i + 1}: {rates[-1]:,.0f} rows/s, {rss[-1]:.0f} MiB; "
                f"raw COPY {copies[-1]:,.0f} rows/s")
    ratio = [a / b for a, b in zip(rates, copies, strict=True)]
    ctx.add(Row("import", f"schedule import, {small:,} rows", summarize(rates), "rows/s",
                goal="≥ 50,000 rows/s", met=ctx.judge(summarize(rates).median >= 50_000),
                note="whole process, JSON Lines, distinct users, one transaction"))
    ctx.add(Row("import", f"raw COPY of the same {small:,} rows, rendered", summarize(copies),
                "rows/s", note="psycopg2 copy_expert into scheduled_followups, one "
                "transaction: the reference"))
    ctx.add(Row("import", "schedule import / raw COPY", summarize(ratio), "×"))
    ctx.add(Row("import", f"peak RSS, {small:,} rows", summarize(rss), "MiB"))
    big_rates: list[float] = []
    big_rss: list[float] = []
    for i in range(ctx.heavy_runs):
        rate, peak = import_once(ctx, large)
        big_rates.append(rate)
        big_rss.append(peak)
        ctx.log(f"import {large:,} run {i + 1}: {rate:,.0f} rows/s, {peak:.0f} MiB")
    growth = summarize(big_rss).median / summarize(rss).median
    ctx.add(Row("import", f"schedule import, {large:,} rows", summarize(big_rates), "rows/s",
                goal="≥ 50,000 rows/s",
                met=ctx.judge(summarize(big_rates).median >= 50_000)))
    ctx.add(Row("import", f"peak RSS, {large:,} rows", summarize(big_rss), "MiB",
                goal=f"within 20 % of {small:,}", met=ctx.judge(growth <= 1.2),
                note=f"{growth:.2f}× the {small:,}-row peak"))

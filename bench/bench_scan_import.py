"""Time scan-inactive and schedule import on SQLite and PostgreSQL; print medians side by side.

    python bench/bench_scan_import.py                      # 20k and 100k users, 100k rows
    python bench/bench_scan_import.py --users 20000 --rows 200000 --repeat 3

Each measurement runs on a fresh state: scan-inactive over N inactive users (each with one
conversation of 3 messages, all due a re-engagement), and an import of R post-event rows for
R distinct users from a JSON Lines file. PostgreSQL: a scratch database on
FOLLOWUP_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres), dropped
afterwards. Timings are wall-clock seconds of the service call, including its transaction.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from followup_cli.db.engine import Database
from followup_cli.db.migrate import upgrade
from followup_cli.db.schema import ai_conversations, ai_messages, scheduled_followups
from followup_cli.service.context import Context
from followup_cli.service.importing import import_schedule
from followup_cli.service.scanning import scan_inactive
from followup_cli.settings import load_settings

PG_ADMIN = os.environ.get("FOLLOWUP_BENCH_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        url = f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        db = Database(url)
        upgrade(db)
        db.dispose()
        yield url
        return
    admin = sa.create_engine(PG_ADMIN.replace("postgresql://", "postgresql+psycopg2://", 1),
                             isolation_level="AUTOCOMMIT")
    name = f"followup_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rpartition("/")[0] + f"/{name}"
    try:
        db = Database(url.replace("postgresql://", "postgresql+psycopg2://", 1))
        upgrade(db)
        db.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def context(url: str) -> Context:
    return Context(load_settings({"DATABASE_URL": url}), clock=lambda: NOW)


def seed_users(ctx: Context, users: int) -> None:
    last = NOW - timedelta(days=40)
    with ctx.db.transaction() as conn:
        for start in range(0, users, 10_000):
            ids = range(start, min(users, start + 10_000))
            conn.execute(sa.insert(ai_conversations), [
                {"id": f"c{i}", "user_id": f"u{i}", "created_at": last} for i in ids])
            conn.execute(sa.insert(ai_messages), [
                {"id": f"m{i}-{k}", "conversation_id": f"c{i}", "user_id": f"u{i}",
                 "role": "user" if k != 1 else "assistant", "content": "hello",
                 "emotion_score": ((i + k) % 10) / 10, "created_at": last - timedelta(
                     minutes=3 - k)}
                for i in ids for k in range(3)])
        if ctx.db.is_postgres:
            conn.exec_driver_sql("ANALYZE")


def clear_followups(ctx: Context) -> None:
    with ctx.db.transaction() as conn:
        conn.execute(sa.delete(scheduled_followups))
        conn.exec_driver_sql("DELETE FROM followup_runs")
        if ctx.db.is_postgres:
            conn.exec_driver_sql("ANALYZE scheduled_followups")


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def bench_scan(backend: str, users: int, repeat: int, workdir: Path) -> list[float]:
    with database(backend, workdir) as url:
        ctx = context(url)
        seed_users(ctx, users)
        times = []
        for _ in range(repeat):
            clear_followups(ctx)
            seconds, scheduled = timed(lambda: scan_inactive(ctx).scheduled)
            assert scheduled == users, scheduled
            times.append(seconds)
        ctx.close()
        return times


def write_rows(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            out.write(json.dumps({"type": "post_event", "user_id": f"u{i}",
                                  "conversation_id": f"c{i}",
                                  "event_date": "2026-11-14T18:00", "booking_id": f"B-{i}"})
                      + "\n")


def bench_import(backend: str, rows: int, repeat: int, workdir: Path) -> list[float]:
    path = workdir / f"rows-{rows}.jsonl"
    if not path.exists():
        write_rows(path, rows)
    with database(backend, workdir) as url:
        ctx = context(url)
        times = []
        for _ in range(repeat):
            clear_followups(ctx)
            seconds, scheduled = timed(lambda: import_schedule(ctx, str(path)).scheduled)
            assert scheduled == rows, scheduled
            times.append(seconds)
        ctx.close()
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="20000,100000",
                        help="comma-separated user counts for scan-inactive")
    parser.add_argument("--rows", default="100000",
                        help="comma-separated row counts for schedule import")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    backends = args.backends.split(",")
    cases: list[tuple[str, int, Callable[[str, int, int, Path], list[float]]]] = [
        ("scan-inactive users", int(n), bench_scan) for n in args.users.split(",") if n]
    cases += [("schedule import rows", int(n), bench_import) for n in args.rows.split(",")
              if n]
    header = f"{'case':<22}{'size':>9}" + "".join(f"{b + ' median s':>18}{'per s':>10}"
                                                   for b in backends)
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="followup-bench-") as tmp:
        for label, size, fn in cases:
            line = f"{label:<22}{size:>9}"
            for backend in backends:
                times = fn(backend, size, args.repeat, Path(tmp))
                median = statistics.median(times)
                line += f"{median:>18.2f}{size / median:>10,.0f}"
                print(f"  {backend} {label} {size}: runs {', '.join(f'{t:.2f}' for t in times)}",
                      file=sys.stderr)
            print(line, flush=True)


if __name__ == "__main__":
    main()

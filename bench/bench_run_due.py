"""How fast `followup run-due` is, the way cron runs it (a fresh process each time).

Prints, for SQLite and PostgreSQL side by side:
  * an idle pass (nothing due), on an empty table and after the burst runs (history of
    executed rows: the partial index should keep it flat), median wall time;
  * rows/s delivered with the file sender for a burst of 5,000 and 20,000 due follow-ups,
    at the default --batch-size 100 and at 1000, median over a few runs.

    .venv/bin/python bench/bench_run_due.py [--runs 3] [--idle-runs 9] [--sizes 5000,20000]

PostgreSQL: FOLLOWUP_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres);
a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.acceptance.test_run_due_concurrent import bulk_insert_due

ADMIN = os.environ.get("FOLLOWUP_BENCH_POSTGRES_URL",
                       "postgresql://postgres@127.0.0.1:5432/postgres")


def followup() -> list[str]:
    found = shutil.which("followup")
    return [found] if found else [sys.executable, "-m", "followup_cli"]


def env_for(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FOLLOWUP_", "SCHEDULER_", "DATABASE_URL"))}
    env.update({"DATABASE_URL": url, **extra})
    return env


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()}")
    return elapsed


def reset(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM scheduled_followups"))
    engine.dispose()


class Backend:
    def __init__(self, name: str, url: str, cleanup: Callable[[], None]) -> None:
        self.name, self.url, self.cleanup = name, url, cleanup


def sqlite_backend(tmp: Path) -> Backend:
    url = f"sqlite:///{tmp / 'bench.db'}"
    subprocess.run([*followup(), "db", "upgrade"], env=env_for(url), check=True,
                   capture_output=True)
    return Backend("sqlite", url, lambda: None)


def pg_backend() -> Backend:
    name = f"followup_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN.replace("postgresql://", "postgresql+psycopg2://", 1),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    subprocess.run([*followup(), "db", "upgrade"], env=env_for(url), check=True,
                   capture_output=True)

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return Backend("postgres", url, drop)


def idle(backend: Backend, runs: int) -> float:
    env = env_for(backend.url, FOLLOWUP_SENDER="log")
    timed([*followup(), "run-due"], env)  # warm the page cache
    return statistics.median(timed([*followup(), "run-due"], env) for _ in range(runs))


def burst(backend: Backend, rows: int, batch: int, runs: int, tmp: Path) -> float:
    rates = []
    for i in range(runs):
        reset(backend.url)
        bulk_insert_due(backend.url, rows, prefix=f"r{i}")
        out = tmp / f"{backend.name}-{rows}-{batch}-{i}.jsonl"
        elapsed = timed([*followup(), "run-due", "--batch-size", str(batch)],
                        env_for(backend.url, FOLLOWUP_SENDER=f"file:{out}"))
        delivered = sum(1 for _ in out.open())
        if delivered != rows:
            raise SystemExit(f"{backend.name}: delivered {delivered} of {rows}")
        rates.append(rows / elapsed)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-runs", type=int, default=9)
    parser.add_argument("--sizes", default="5000,20000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        backends = [sqlite_backend(tmp), pg_backend()]
        try:
            help_s = statistics.median(
                timed([*followup(), "--help"], env_for(backends[0].url))
                for _ in range(args.idle_runs))
            table: list[tuple[str, list[str]]] = []
            table.append(("idle pass, empty table (median s)",
                          [f"{idle(b, args.idle_runs):.3f}" for b in backends]))
            for rows in sizes:
                for batch in (100, 1000):
                    table.append((f"{rows:,} due, --batch-size {batch} (rows/s)",
                                  [f"{burst(b, rows, batch, args.runs, tmp):,.0f}"
                                   for b in backends]))
            table.append((f"idle pass, {sizes[-1]:,} executed rows (median s)",
                          [f"{idle(b, args.idle_runs):.3f}" for b in backends]))
        finally:
            for b in backends:
                b.cleanup()
    width = max(len(label) for label, _ in table)
    print(f"{'':{width}}  {'sqlite':>10}  {'postgres':>10}")
    for label, cells in table:
        print(f"{label:{width}}  {cells[0]:>10}  {cells[1]:>10}")
    print(f"(followup --help: {help_s:.3f} s median; {os.cpu_count()} CPUs; "
          f"load {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()

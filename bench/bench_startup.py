"""Start-up cost of the commands cron runs every minute, side by side in one run.

DESIGN targets on a 2-core machine: `followup --help` within 250 ms, an idle `run-due`
within 400 ms. Prints medians (and min/max) over N runs of fresh processes.

    .venv/bin/python bench/bench_startup.py [--runs 15] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

FOLLOWUP = str(Path(sys.executable).parent / "followup")


def timed(cmd: list[str], env: dict[str, str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        samples.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
    return samples


def make_pg(admin_url: str) -> tuple[str, str]:
    import sqlalchemy as sa

    name = f"followup_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin_url.replace("postgresql://", "postgresql+psycopg2://"),
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return name, admin_url.rsplit("/", 1)[0] + "/" + name


def drop_pg(admin_url: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url.replace("postgresql://", "postgresql+psycopg2://"),
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--postgres", default=os.environ.get(
        "FOLLOWUP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()

    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("FOLLOWUP_", "DATABASE_URL", "SCHEDULER_"))}
    tmp = tempfile.mkdtemp(prefix="followup-bench-")
    # An explicit DATABASE_URL needs an explicit sender (run-due refuses without one).
    sqlite_env = {**base_env, "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                  "FOLLOWUP_SENDER": "log"}
    subprocess.run([FOLLOWUP, "db", "upgrade"], env=sqlite_env, check=True,
                   capture_output=True)
    pg_name, pg_url = make_pg(args.postgres)
    pg_env = {**base_env, "DATABASE_URL": pg_url, "FOLLOWUP_SENDER": "log"}
    subprocess.run([FOLLOWUP, "db", "upgrade"], env=pg_env, check=True, capture_output=True)

    cases = [
        ("python -c pass (interpreter floor)", [sys.executable, "-c", "pass"], base_env, None),
        ("followup --version", [FOLLOWUP, "--version"], base_env, None),
        ("followup --help", [FOLLOWUP, "--help"], base_env, 0.250),
        ("followup run-due, idle, SQLite", [FOLLOWUP, "run-due"], sqlite_env, 0.400),
        ("followup run-due, idle, PostgreSQL", [FOLLOWUP, "run-due"], pg_env, 0.400),
        ("followup health, PostgreSQL", [FOLLOWUP, "health"], pg_env, None),
    ]
    try:
        print(f"{'command':40} {'median':>8} {'min':>8} {'max':>8}  target")
        for label, cmd, env, target in cases:
            try:
                samples = timed(cmd, env, args.runs)
            except SystemExit as exc:
                print(f"{label:40} {'n/a':>8}  ({str(exc).splitlines()[0][:60]})")
                continue
            med = statistics.median(samples)
            verdict = "" if target is None else (
                f"{target * 1000:.0f} ms {'ok' if med <= target else 'MISSED'}")
            print(f"{label:40} {med * 1000:7.0f}ms {min(samples) * 1000:7.0f}ms "
                  f"{max(samples) * 1000:7.0f}ms  {verdict}")
    finally:
        drop_pg(args.postgres, pg_name)


if __name__ == "__main__":
    main()

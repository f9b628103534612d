"""Peak memory of `followup list --limit 0` (all rows, streamed), the way an operator runs it:
a fresh process, measured with /usr/bin/time -v (maximum resident set size).

DESIGN target: under 200 MiB for 200,000 rows, and no more for 2,000,000. Prints, for each
database and row count, the peak RSS and wall time of `list --limit 0 --json` and of the
plain-lines form, beside `list` (50 rows) as the floor.

    .venv/bin/python bench/bench_list_memory.py [--rows 200000,2000000] [--only sqlite]

PostgreSQL: FOLLOWUP_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres);
a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_run_due import Backend, env_for, followup, pg_backend, sqlite_backend

COLUMNS = ("id, conversation_id, user_id, trigger_type, trigger_data, scheduled_at, "
           "next_attempt_at, status, template_id, message_content, created_at, retry_count")


def engine_for(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))


def fill(url: str, rows: int) -> None:
    """`rows` failed follow-ups in one INSERT ... SELECT (no Python-side rows)."""
    at = datetime(2026, 11, 20, 12, tzinfo=UTC)
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM scheduled_followups"))
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(
                f"INSERT INTO scheduled_followups ({COLUMNS}) SELECT "
                "lpad(g::text, 8, '0') || '-4c1e-9f59-2f7d0c6f1b2a', 'c' || g, 'u' || g,"
                " 'post_event', '{}'::jsonb, :at, :at, 'failed',"
                " 'post_event_neutral_emotion', 'Hello ' || g, :at, 4"
                " FROM generate_series(1, :n) AS g"), {"at": at, "n": rows})
        else:
            text_at = at.replace(tzinfo=None).isoformat(sep=" ")
            conn.execute(sa.text(
                f"INSERT INTO scheduled_followups ({COLUMNS}) "
                "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n)"
                " SELECT printf('%08d-4c1e-9f59-2f7d0c6f1b2a', x), 'c' || x, 'u' || x,"
                " 'post_event', '{}', :at, :at, 'failed', 'post_event_neutral_emotion',"
                " 'Hello ' || x, :at, 4 FROM g"), {"at": text_at, "n": rows})
    engine.dispose()


def measure(url: str, args: list[str]) -> tuple[float, float, int]:
    """(peak RSS in MiB, wall seconds, bytes written) of one `followup ARGS` process."""
    with tempfile.TemporaryFile() as out:
        done = subprocess.run(["/usr/bin/time", "-v", *followup(), *args], env=env_for(url),
                              stdout=out, stderr=subprocess.PIPE, text=False)
        size = out.seek(0, os.SEEK_END)
    report = done.stderr.decode()
    if done.returncode != 0:
        raise SystemExit(f"followup {' '.join(args)} failed: {report[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)[1])  # type: ignore[index]
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", report)
    assert wall is not None
    seconds = int(wall[1] or 0) * 3600 + int(wall[2]) * 60 + float(wall[3])
    return rss / 1024, seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="200000,2000000")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]
    backends: list[Callable[[], Backend]] = []
    tmp = Path(tempfile.mkdtemp(prefix="followup-bench-"))
    if args.only != "postgres":
        backends.append(lambda: sqlite_backend(tmp))
    if args.only != "sqlite":
        backends.append(pg_backend)
    print(f"{'database':9} {'rows':>9}  {'command':32} {'peak RSS':>9} {'wall':>7} {'output':>9}")
    try:
        for open_backend in backends:
            backend = open_backend()
            try:
                for rows in sizes:
                    fill(backend.url, rows)
                    for command in (["list"], ["list", "--limit", "0", "--json"],
                                    ["list", "--limit", "0"]):
                        rss, wall, size = measure(backend.url, command)
                        print(f"{backend.name:9} {rows:>9,}  {' '.join(command):32} "
                              f"{rss:7.1f}MiB {wall:6.1f}s {size / 2**20:7.1f}MiB", flush=True)
            finally:
                backend.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

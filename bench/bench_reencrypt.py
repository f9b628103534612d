"""How fast `followup db reencrypt` seals a table, the way an operator runs it.

For SQLite and PostgreSQL: N plain rows are sealed with key A (turning encryption on),
then rotated to key B ("B,A"), then the rotation is run again (nothing left to do). Prints
rows/s and the wall time of each step, with the peak memory of the process.

    .venv/bin/python bench/bench_reencrypt.py [--rows 100000] [--batch-size 500]

PostgreSQL: FOLLOWUP_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres);
a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_run_due import env_for, followup, pg_backend, sqlite_backend
from tests.acceptance.test_run_due_concurrent import bulk_insert_due

KEY_A = base64.urlsafe_b64encode(b"A" * 32).decode()
KEY_B = base64.urlsafe_b64encode(b"B" * 32).decode()


def step(url: str, keys: str, batch: int) -> tuple[float, dict[str, object], float]:
    """(seconds, the JSON result, peak RSS in MiB of the followup process, by GNU time)."""
    argv = ["/usr/bin/time", "-f", "%M", *followup(), "db", "reencrypt", "--json",
            "--batch-size", str(batch)]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env_for(url, FOLLOWUP_ENCRYPTION_KEY=keys),
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"db reencrypt failed ({done.returncode}): {done.stderr}")
    peak = int(done.stderr.strip().splitlines()[-1]) / 1024  # GNU time: max RSS in KiB
    return elapsed, json.loads(done.stdout), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in (sqlite_backend(Path(tmp)), pg_backend()):
            try:
                bulk_insert_due(backend.url, args.rows, prefix="b")
                for label, keys in (("encrypt plain rows", KEY_A),
                                    ("rotate A -> B", f"{KEY_B},{KEY_A}"),
                                    ("rerun", f"{KEY_B},{KEY_A}")):
                    elapsed, doc, peak = step(backend.url, keys, args.batch_size)
                    rate = doc["rewritten"] / elapsed if doc["rewritten"] else 0  # type: ignore[operator]
                    print(f"{backend.name:8} {label:20} rewritten {doc['rewritten']:>7} in "
                          f"{elapsed:6.2f} s = {rate:8.0f} rows/s; peak RSS {peak:.0f} MiB")
            finally:
                backend.cleanup()


if __name__ == "__main__":
    main()

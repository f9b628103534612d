"""A pass killed with SIGKILL in the middle: after its lease, the next pass delivers what
it held; nothing is lost (at-least-once)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from followup_cli.settings import normalize_database_url
from tests.acceptance.test_run_due_concurrent import (
    bulk_insert_due,
    clean_env,
    followup_argv,
    status_counts,
)

ROWS = 20


def held_rows(url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(normalize_database_url(url))
    with engine.connect() as conn:
        rows = [(r[0], r[1]) for r in conn.execute(sa.text(
            "SELECT id, locked_by FROM scheduled_followups WHERE status = 'processing'"))]
    engine.dispose()
    return rows


def delivered(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_killed_pass_is_recovered_after_its_lease(db_url: str, tmp_path: Path) -> None:
    bulk_insert_due(db_url, ROWS)
    slow_out = tmp_path / "slow.jsonl"
    script = tmp_path / "slow-deliver.sh"
    # One delivery: the JSON line, then a pause that leaves time to kill the pass mid-send.
    script.write_text(f'#!/bin/sh\n{{ cat; echo; }} >> "{slow_out}"\nsleep 0.5\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    lease = {"FOLLOWUP_LEASE_SECONDS": "10"}  # the smallest allowed

    victim = subprocess.Popen(
        [*followup_argv(), "run-due", "--sender", f"command:{script}"],
        env=clean_env(db_url, **lease), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while len(delivered(slow_out)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(delivered(slow_out)) >= 3, victim.stderr.read().decode() if victim.stderr \
            else ""
        os.killpg(victim.pid, signal.SIGKILL)  # the pass and its sender child, mid-send
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
    held = held_rows(db_url)
    assert held, "the killed pass held nothing in flight"
    assert len({locked_by for _, locked_by in held}) == 1

    fast_out = tmp_path / "fast.jsonl"
    env = clean_env(db_url, FOLLOWUP_SENDER=f"file:{fast_out}", **lease)
    deadline = time.monotonic() + 40
    while True:  # cron, every second instead of every minute
        done = subprocess.run([*followup_argv(), "run-due", "--json"], env=env,
                              capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr.decode()
        if status_counts(db_url) == {"executed": ROWS} or time.monotonic() > deadline:
            break
        time.sleep(1)

    assert status_counts(db_url) == {"executed": ROWS}  # nothing lost
    everything = delivered(slow_out) + delivered(fast_out)
    assert set(everything) == {f"f-{i:06d}" for i in range(ROWS)}
    # Only what the dead pass held can have been delivered twice.
    twice = {i for i in everything if everything.count(i) > 1}
    assert twice <= {fid for fid, _ in held}
    # The recovered follow-up carries its lost attempt.
    engine = sa.create_engine(normalize_database_url(db_url))
    with engine.connect() as conn:
        retried: dict[str, int] = dict(conn.execute(sa.text(
            "SELECT id, retry_count FROM scheduled_followups WHERE retry_count > 0")).all())
    engine.dispose()
    assert set(retried) == {fid for fid, _ in held}

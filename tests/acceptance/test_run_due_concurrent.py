"""Many `followup run-due` processes at once, the way cron on several hosts runs them:
every due follow-up is delivered exactly once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from followup_cli.settings import normalize_database_url

PASSES = 6
ROWS = 5000


def followup_argv() -> list[str]:
    found = shutil.which("followup")
    return [found] if found else [sys.executable, "-m", "followup_cli"]


def clean_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FOLLOWUP_", "SCHEDULER_", "REENGAGEMENT_", "DATABASE_URL"))}
    env.update({"DATABASE_URL": url, **extra})
    return env


def bulk_insert_due(url: str, n: int, *, prefix: str = "f") -> None:
    """n due follow-ups in one INSERT ... SELECT (PostgreSQL) or executemany (SQLite)."""
    engine = sa.create_engine(normalize_database_url(url))
    due = datetime.now(UTC) - timedelta(minutes=10)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(
                "INSERT INTO scheduled_followups (id, conversation_id, user_id, trigger_type,"
                " trigger_data, scheduled_at, next_attempt_at, status, template_id,"
                " message_content, created_at, retry_count)"
                " SELECT :p || '-' || lpad(g::text, 6, '0'), 'c' || g, 'u' || g, 'post_event',"
                " jsonb_build_object('event_date', :due), :due, :due, 'pending',"
                " 'post_event_neutral_emotion', 'Hello ' || g, :due, 0"
                " FROM generate_series(0, :n - 1) AS g"), {"p": prefix, "due": due, "n": n})
        else:
            from tests.integration.test_delivery import make_rows

            conn.execute(sa.text(
                "INSERT INTO scheduled_followups (id, conversation_id, user_id, trigger_type,"
                " trigger_data, scheduled_at, next_attempt_at, status, template_id,"
                " message_content, created_at, retry_count) VALUES (:id, :conversation_id,"
                " :user_id, 'post_event', '{}', :at, :at, 'pending', :template_id,"
                " :message_content, :at, 0)"),
                [{**r, "at": due.replace(tzinfo=None).isoformat(sep=" ")}
                 for r in make_rows(n, due, prefix=prefix)])
    engine.dispose()


def status_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(normalize_database_url(url))
    with engine.connect() as conn:
        out = {r[0]: int(r[1]) for r in conn.execute(sa.text(
            "SELECT status, count(*) FROM scheduled_followups GROUP BY status"))}
    engine.dispose()
    return out


def wait_for_waiters(admin: sa.Connection, dbname: str, n: int, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        admin.execute(sa.text("SELECT pg_stat_clear_snapshot()"))  # stats are per-transaction
        waiting = admin.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = :db"
            " AND application_name = 'followup' AND wait_event_type = 'Lock'"),
            {"db": dbname}).scalar_one()
        if waiting >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"only {waiting} of {n} passes reached the claim")


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_passes_deliver_each_exactly_once(pg_url: str, pg_engine: sa.Engine,
                                                     tmp_path: Path) -> None:
    bulk_insert_due(pg_url, ROWS)
    out = tmp_path / "deliveries.jsonl"
    env = clean_env(pg_url, FOLLOWUP_SENDER=f"file:{out}")
    # Hold the table so every pass starts claiming at the same instant: without this the
    # first process could drain it before the last one has imported SQLAlchemy.
    gate = pg_engine.connect()
    tx = gate.begin()
    gate.execute(sa.text("LOCK TABLE scheduled_followups IN EXCLUSIVE MODE"))
    procs = [subprocess.Popen([*followup_argv(), "run-due", "--json", "--batch-size", "50"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(PASSES)]
    try:
        wait_for_waiters(gate, pg_url.rsplit("/", 1)[1], PASSES)
        started = time.monotonic()
        tx.commit()
        results = [p.communicate(timeout=55) for p in procs]
        elapsed = time.monotonic() - started
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        gate.close()
    docs = []
    for p, (stdout, stderr) in zip(procs, results, strict=True):
        assert p.returncode == 0, stderr.decode()
        docs.append(json.loads(stdout))
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(ids) == ROWS and len(set(ids)) == ROWS  # every one, exactly once
    assert sum(d["executed"] for d in docs) == ROWS
    assert sum(d["claimed"] for d in docs) == ROWS
    assert status_counts(pg_url) == {"executed": ROWS}
    shares = sorted((d["executed"] for d in docs), reverse=True)
    assert sum(1 for s in shares if s) >= 2, shares  # they really did share the work
    print(f"\n{ROWS} follow-ups, {PASSES} concurrent passes: {elapsed:.2f} s wall, "
          f"{ROWS / elapsed:,.0f} rows/s, shares {shares}")


@pytest.mark.slow
def test_concurrent_passes_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    bulk_insert_due(sqlite_url, 1000)
    out = tmp_path / "deliveries.jsonl"
    env = clean_env(sqlite_url, FOLLOWUP_SENDER=f"file:{out}")
    procs = [subprocess.Popen([*followup_argv(), "run-due", "--json", "--batch-size", "25"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(3)]
    results = [p.communicate(timeout=55) for p in procs]
    for p, (_, stderr) in zip(procs, results, strict=True):
        assert p.returncode == 0, stderr.decode()
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(ids) == 1000 and len(set(ids)) == 1000
    assert status_counts(sqlite_url) == {"executed": 1000}

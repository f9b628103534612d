"""Overlapping scan-inactive passes, as separate processes on one PostgreSQL database (the way
cron on several hosts runs them): no user is re-engaged twice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from followup_cli.db.schema import ai_conversations, ai_messages
from followup_cli.settings import normalize_database_url

USERS = 4000
PASSES = 3


def followup_cmd() -> list[str]:
    found = shutil.which("followup")
    return [found] if found else [sys.executable, "-m", "followup_cli"]


def seed(url: str) -> None:
    engine = sa.create_engine(normalize_database_url(url))
    old = datetime.now(UTC) - timedelta(days=40)
    with engine.begin() as conn:
        conn.execute(sa.insert(ai_conversations), [
            {"id": f"c{i}", "user_id": f"u{i}", "created_at": old} for i in range(USERS)])
        conn.execute(sa.insert(ai_messages), [
            {"id": f"m{i}", "conversation_id": f"c{i}", "user_id": f"u{i}", "role": "user",
             "content": "hi", "emotion_score": 0.5, "created_at": old}
            for i in range(USERS)])
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_racing_scan_passes_schedule_each_user_once(pg_url: str, pg_engine: sa.Engine
                                                   ) -> None:
    seed(pg_url)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FOLLOWUP_", "SCHEDULER_", "REENGAGEMENT_"))}
    env["DATABASE_URL"] = pg_url
    procs = [subprocess.Popen([*followup_cmd(), "scan-inactive", "--json"], env=env,
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(PASSES)]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=50)
        assert proc.returncode == 0, stderr
        results.append(json.loads(stdout))
    assert sum(r["scheduled"] for r in results) == USERS
    with pg_engine.connect() as conn:
        total, users = conn.execute(sa.text(
            "SELECT count(*), count(DISTINCT user_id) FROM scheduled_followups "
            "WHERE trigger_type = 'reengagement'")).one()
        runs = conn.execute(sa.text(
            "SELECT count(*) FROM followup_runs WHERE kind = 'scan-inactive' "
            "AND status = 'ok'")).scalar_one()
    assert (total, users) == (USERS, USERS)
    assert runs == PASSES

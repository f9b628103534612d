"""Issue 9: bulk work locks its own users' guard rows, not the whole scheduling path. While a
large admission (an import, a scan) holds its transaction open, a `schedule` for any other
user completes at once; one for a user the bulk admission touches waits for it and is then
decided against what it wrote. Before row guards, bulk work took one exclusive lock and a
booking for an unrelated user waited for the whole import (31 s, then exit 4)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from followup_cli.service.admission import ANALYZE_STAGE_MIN, Admission
from tests.acceptance.test_schedule_race import post_args, spawn

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
BULK_USERS = [f"bulk-{i:05d}" for i in range(ANALYZE_STAGE_MIN * 2)]


def staged(users: list[str]) -> list[dict[str, object]]:
    return [{"seq": i, "id": f"f-{i}", "user_id": u, "conversation_id": f"c{i}",
             "trigger_type": "reengagement", "template_id": "reengagement_neutral",
             "message_content": "hello", "status": "pending",
             "scheduled_at": NOW + timedelta(days=1), "next_attempt_at": NOW + timedelta(days=1),
             "created_at": NOW, "retry_count": 0, "trigger_data": {"days_inactive": 30}}
            for i, u in enumerate(users)]


def wait_for_a_lock_wait(engine: sa.Engine) -> None:
    """Until some session waits for a lock (the touched user's `schedule`)."""
    deadline = time.monotonic() + 30
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(sa.text(
                "SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one()
            if waiting:
                return
            conn.rollback()
            time.sleep(0.05)
    raise AssertionError("the touched user's schedule never waited for the bulk admission")


def test_a_bulk_admission_holds_only_its_own_users(pg_url: str, pg_engine: sa.Engine) -> None:
    with pg_engine.connect() as bulk:
        with bulk.begin():
            admission = Admission(bulk, cap=5)
            admission.add(staged(BULK_USERS))
            assert admission.admit().admitted == len(BULK_USERS)
            # The bulk transaction is open, its guard rows locked. Another user books:
            other = spawn(pg_url, post_args("2026-11-28T18:00", user="booker"))
            out, err = other.communicate(timeout=60)
            assert other.returncode == 0, err
            assert json.loads(out)["status"] == "scheduled"
            # A user the bulk admission touches waits for it...
            touched = spawn(pg_url, ["schedule", "reengagement", "--user-id",
                                     BULK_USERS[7], "--days-inactive", "40"])
            wait_for_a_lock_wait(pg_engine)
            assert touched.poll() is None
        # ...and, once it commits, is decided against the row it wrote.
        out, err = touched.communicate(timeout=60)
    assert touched.returncode == 0, err
    assert json.loads(out)["status"] == "duplicate"
    with pg_engine.connect() as conn:
        counts = {str(t): int(n) for t, n in conn.execute(sa.text(
            "SELECT trigger_type, count(*) FROM scheduled_followups GROUP BY 1"))}
    assert counts == {"reengagement": len(BULK_USERS), "post_event": 1}

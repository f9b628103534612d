"""A row the original application writes, with only the guide's columns, is accepted and
delivered like any other (DESIGN, "Guarantees under faults").

The INSERTs below are plain SQL naming only columns of the guide's
`CREATE TABLE scheduled_followups`, with the guide's own example values (the event of its
"always use timezone-aware datetimes" example, its post_event_high_emotion wording).
Before migration 0003 both databases refused them: `next_attempt_at` was NOT NULL with no
default ("null value in column next_attempt_at violates not-null constraint" /
"NOT NULL constraint failed: scheduled_followups.next_attempt_at"). Now PostgreSQL
completes such a row in a trigger, and SQLite at the start of followup's next write
(followup_cli/db/guide_rows.py explains why SQLite has no trigger); either way the next
cron pass delivers it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from followup_cli.cli.app import app
from followup_cli.settings import normalize_database_url

runner = CliRunner()

# Every column of the guide's table, as the original application wrote a new follow-up.
GUIDE_ROW = """
INSERT INTO scheduled_followups (
    id, conversation_id, user_id, trigger_type, trigger_data, scheduled_at, executed_at,
    cancelled_at, status, template_id, message_content, created_at, error_message, retry_count
) VALUES (
    'guide-row-1', 'conv-guide', 'user-guide', 'post_event',
    '{"event_date": "2025-11-15T18:00:00+00:00", "booking_id": "B-1001", "custom_message": null}',
    '2025-11-16 18:00:00', NULL, NULL, 'pending', 'post_event_high_emotion',
    'Hi! 🎉 I hope your event on November 15, 2025 was amazing!', '2025-11-15 09:30:00',
    NULL, 0
)
"""

# The least the guide's table demands: its NOT NULL columns without defaults.
MINIMAL_ROWS = """
INSERT INTO scheduled_followups (id, conversation_id, user_id, trigger_type, scheduled_at,
                                 message_content, created_at)
VALUES ('guide-row-2', 'conv-2', 'user-2', 'reengagement', '2025-11-16 09:00:00',
        'We miss you!', '2025-11-16 08:00:00');
INSERT INTO scheduled_followups (id, conversation_id, user_id, trigger_type, trigger_data,
                                 scheduled_at, message_content, created_at)
VALUES ('guide-row-3', 'conv-3', 'user-3', 'post_event', '{"event_date": "next Friday"}',
        '2025-11-16 10:00:00', 'Thanks for coming!', '2025-11-16 08:00:00')
"""


def execute(url: str, sql: str) -> None:
    engine = sa.create_engine(normalize_database_url(url))
    try:
        with engine.begin() as conn:
            for statement in sql.split(";"):
                if statement.strip():
                    conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def fetch(url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(normalize_database_url(url))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def followup_writes(url: str) -> None:
    """Any followup command that writes (here: a re-engagement for another user)."""
    result = runner.invoke(app, ["schedule", "reengagement", "--user-id", "someone-else"],
                           env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output


def completed(url: str) -> dict[str, tuple[Any, ...]]:
    return {r[0]: r[1:] for r in fetch(url, (
        "SELECT id, next_attempt_at, scheduled_at, event_at, status, retry_count "
        "FROM scheduled_followups ORDER BY id"))}


def test_guide_rows_are_accepted_and_delivered(db_url: str, tmp_path: Path) -> None:
    execute(db_url, GUIDE_ROW)
    execute(db_url, MINIMAL_ROWS)
    # the next cron pass, as cron runs it: on SQLite its idle check must see the new rows
    # as work, and the pass completes them before it claims
    outbox = tmp_path / "outbox.jsonl"
    result = runner.invoke(app, ["run-due", "--json"], env={
        "DATABASE_URL": db_url, "FOLLOWUP_SENDER": f"file:{outbox}"})
    assert result.exit_code == 0, result.output
    delivered = {d["id"]: d for d in map(json.loads, outbox.read_text().splitlines())}
    assert set(delivered) == {"guide-row-1", "guide-row-2", "guide-row-3"}
    assert delivered["guide-row-1"]["message"].startswith("Hi! 🎉 I hope your event")
    got = completed(db_url)
    for fid in ("guide-row-1", "guide-row-2", "guide-row-3"):
        next_attempt, scheduled, _event, status, retries = got[fid]
        assert as_utc(next_attempt) == as_utc(scheduled), fid
        assert (status, retries) == ("executed", 0)
    # the event instant is read from trigger_data when it is a time, else left NULL
    assert as_utc(got["guide-row-1"][2]) == datetime(2025, 11, 15, 18, 0, tzinfo=UTC)
    assert got["guide-row-2"][2] is None and got["guide-row-3"][2] is None


def test_the_duplicate_rule_sees_a_guide_row(db_url: str) -> None:
    """The ±1 day rule compares event instants: the guide's row has one once completed
    (PostgreSQL at insert, SQLite when the next followup write begins)."""
    execute(db_url, GUIDE_ROW)
    duplicate = runner.invoke(app, [
        "schedule", "post-event", "--user-id", "user-guide", "--conversation-id", "conv-guide",
        "--event-date", "2025-11-15T20:00:00+00:00", "--json"], env={"DATABASE_URL": db_url})
    assert duplicate.exit_code == 0, duplicate.output
    assert json.loads(duplicate.stdout)["status"] == "duplicate"
    assert json.loads(duplicate.stdout)["id"] == "guide-row-1"
    next_attempt, scheduled, event, status, _retries = completed(db_url)["guide-row-1"]
    assert as_utc(next_attempt) == as_utc(scheduled) and status == "pending"
    assert as_utc(event) == datetime(2025, 11, 15, 18, 0, tzinfo=UTC)


def test_next_attempt_at_is_never_left_null(db_url: str) -> None:
    execute(db_url, GUIDE_ROW)
    with pytest.raises(sa.exc.IntegrityError):  # nothing to default from
        execute(db_url, GUIDE_ROW.replace("'guide-row-1'", "'guide-row-9'").replace(
            "'2025-11-16 18:00:00'", "NULL"))
    if db_url.startswith("postgresql"):
        with pytest.raises(sa.exc.IntegrityError):  # NOT NULL: the trigger filled it
            execute(db_url, "UPDATE scheduled_followups SET next_attempt_at = NULL")
        return
    # SQLite admits it; followup's next write completes the row again
    execute(db_url, "UPDATE scheduled_followups SET next_attempt_at = NULL")
    followup_writes(db_url)
    next_attempt, scheduled, *_rest = completed(db_url)["guide-row-1"]
    assert as_utc(next_attempt) == as_utc(scheduled)


@pytest.mark.parametrize("text", ["2025-13-45", "2025-11-15 (evening)", "infinity",
                                  "tomorrow", "", "2025-11-15T18:00:00+99:99"])
def test_bad_event_dates_never_fail_the_insert(db_url: str, text: str) -> None:
    execute(db_url, GUIDE_ROW.replace("2025-11-15T18:00:00+00:00", text))
    followup_writes(db_url)
    [(event_at, next_attempt_at)] = fetch(
        db_url, "SELECT event_at, next_attempt_at FROM scheduled_followups WHERE id = "
                "'guide-row-1'")
    assert event_at is None and next_attempt_at is not None

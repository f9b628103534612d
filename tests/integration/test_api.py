"""The Python API (followup_cli.api.FollowUps) on both databases: the same admission path
and the same results as the commands' --json, one pool across calls."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from followup_cli.api import FollowUps
from followup_cli.cli.app import app
from followup_cli.errors import (
    ExitCode,
    InputError,
    NotFoundError,
    RuleViolation,
    SettingsError,
)
from followup_cli.settings import normalize_database_url


@pytest.fixture
def api(db_url: str):
    with FollowUps(db_url) as followups:
        yield followups


def test_schedule_then_duplicate_like_the_guide(api: FollowUps) -> None:
    event = datetime(2026, 11, 14, 18, 0, tzinfo=UTC)
    first = api.schedule_post_event("u1", "c1", event, booking_id="B-1")
    assert first["status"] == "scheduled" and first["id"]
    assert first["scheduled_at"] == "2026-11-15T18:00:00+00:00"
    # the guide's schedule_post_event_followup() returned None for this one
    again = api.schedule_post_event("u1", "c1", event + timedelta(hours=5))
    assert again["status"] == "duplicate" and again["id"] == first["id"]


def test_naive_times_are_read_in_the_scheduler_zone(db_url: str) -> None:
    with FollowUps(db_url, timezone="America/Los_Angeles", delay_hours=2) as api:
        result = api.schedule_post_event("u1", "c1", datetime(2026, 7, 1, 18, 0))
    expected = datetime(2026, 7, 1, 20, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert result["scheduled_at"] == expected.astimezone(UTC).isoformat()


def test_the_same_fields_as_the_commands_json(api: FollowUps, db_url: str) -> None:
    ours = api.schedule_post_event("u1", "c1", "2026-11-14T18:00")
    cli = CliRunner().invoke(app, ["schedule", "post-event", "--user-id", "u2",
                                   "--conversation-id", "c2", "--event-date",
                                   "2026-11-14T18:00", "--json"],
                             env={"DATABASE_URL": db_url})
    assert cli.exit_code == 0, cli.output
    theirs = json.loads(cli.stdout)
    assert set(ours) == set(theirs)
    assert {k: v for k, v in ours.items() if k not in ("id", "user_id", "conversation_id")} \
        == {k: v for k, v in theirs.items() if k not in ("id", "user_id", "conversation_id")}


def test_reengagement_and_cancel(api: FollowUps) -> None:
    scheduled = api.schedule_reengagement("u9", days_inactive=40)
    assert scheduled["status"] == "scheduled" and scheduled["trigger_type"] == "reengagement"
    assert api.schedule_reengagement("u9")["status"] == "duplicate"
    cancelled = api.cancel(scheduled["id"])
    assert cancelled["cancelled"] == 1 and cancelled["exit_code"] == 0
    assert api.cancel(scheduled["id"])["results"][0]["outcome"] == "already_cancelled"
    with pytest.raises(NotFoundError) as unknown:
        api.cancel("no-such-id")
    assert unknown.value.exit_code == ExitCode.INVALID


def test_the_cap_raises_with_its_exit_code(db_url: str) -> None:
    with FollowUps(db_url, max_pending_per_user=1) as api:
        api.schedule_post_event("u1", "c1", "2026-11-01T10:00")
        with pytest.raises(RuleViolation) as refused:
            api.schedule_post_event("u1", "c1", "2026-11-20T10:00")
    assert refused.value.exit_code == ExitCode.REFUSED


def test_health_check(api: FollowUps) -> None:
    health = api.health_check()
    assert {"status", "scheduler_running", "pending_jobs", "executed_today"} <= set(health)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(SettingsError, match="unknown setting 'delay'"):
        FollowUps("sqlite:///x.db", delay=3)
    with pytest.raises(SettingsError, match="FOLLOWUP_DELAY_HOURS"):
        FollowUps("sqlite:///x.db", delay_hours=-1)


@pytest.mark.postgres
def test_one_pool_serves_many_calls(pg_url: str, pg_engine: sa.Engine) -> None:
    """A process per booking cost 0.3-0.5 s; the API keeps its connections."""
    with FollowUps(pg_url) as api:
        for i in range(40):
            api.schedule_post_event(f"u{i}", f"c{i}", "2026-11-14T18:00")
        with pg_engine.connect() as conn:
            ours = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'followup'"
                " AND datname = current_database()")).scalar_one()
    assert 1 <= ours <= 2


@pytest.mark.parametrize("field", ["user_id", "conversation_id", "booking_id",
                                   "custom_message"])
def test_text_no_database_can_store_is_an_input_error(api: FollowUps, db_url: str,
                                                      field: str) -> None:
    """A lone surrogate (how Python carries undecodable bytes) is refused as input, the
    same on both databases (it was a DatabaseError on PostgreSQL and a stored row on
    SQLite)."""
    fields = {"user_id": "u1", "conversation_id": "c1", "booking_id": "B-1",
              "custom_message": "hello", field: "x\udcff"}
    with pytest.raises(InputError, match=f"{field}: not UTF-8 text"):
        api.schedule_post_event(event_date=datetime(2026, 11, 14, 18, 0, tzinfo=UTC),
                                **fields)
    engine = sa.create_engine(normalize_database_url(db_url))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM scheduled_followups").scalar() == 0
    engine.dispose()


@pytest.mark.parametrize("fraction", [".999700", ".999500", ".000000", ".500000"])
def test_the_duplicate_window_is_one_day_to_the_microsecond(api: FollowUps,
                                                            fraction: str) -> None:
    """Events exactly a day apart are duplicates on both databases. SQLite's strftime
    rounded .9995 s and above up to the next second, so there the window ended a second
    late and began a second late: these were two follow-ups on SQLite, one on PostgreSQL."""
    first = api.schedule_post_event("u1", "c1", f"2026-03-01T10:00:59{fraction}Z")
    again = api.schedule_post_event("u1", "c1", f"2026-03-02T10:00:59{fraction}Z")
    before = api.schedule_post_event("u1", "c1", f"2026-02-28T10:00:59{fraction}Z")
    assert first["status"] == "scheduled"
    assert again["status"] == before["status"] == "duplicate"
    assert again["id"] == before["id"] == first["id"]


def test_a_date_is_its_midnight_in_the_scheduler_zone(api: FollowUps) -> None:
    """Bookings often carry a date: it reads as `--event-date 2026-11-14` does (it raised a
    bare AttributeError); anything else is an InputError naming what it got."""
    from datetime import date

    done = api.schedule_post_event("u1", "c1", date(2026, 11, 14))
    assert done["status"] == "scheduled"
    assert done["scheduled_at"] == "2026-11-15T00:00:00+00:00"  # SCHEDULER_TIMEZONE is UTC
    with pytest.raises(InputError, match="not int"):
        api.schedule_post_event("u2", "c1", 20261114)  # type: ignore[arg-type]

"""list, show and retry on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from followup_cli.errors import ExitCode, InputError, NotFoundError
from followup_cli.service.browse import list_followups, show_followup
from followup_cli.service.context import Context
from followup_cli.service.maintenance import retry
from tests.conftest import FakeClock
from tests.helpers import add_followup, rows


def at(hour: int) -> datetime:
    return datetime(2026, 11, 20, hour, 0, tzinfo=UTC)


def seed(ctx: Context) -> None:
    add_followup(ctx, id="a1", user_id="alice", scheduled_at=at(1))
    add_followup(ctx, id="a2", user_id="alice", scheduled_at=at(5), status="executed",
                 executed_at=at(5))
    add_followup(ctx, id="a3", user_id="alice", scheduled_at=at(9), status="failed",
                 trigger_type="reengagement")
    add_followup(ctx, id="b1", user_id="bob", scheduled_at=at(3), status="cancelled")


def listed(ctx: Context, **kw: object) -> list[str]:
    return [r["id"] for r in list_followups(ctx, **kw).followups]  # type: ignore[arg-type]


def test_list_filters_and_order(ctx: Context) -> None:
    seed(ctx)
    assert listed(ctx) == ["a3", "a2", "b1", "a1"]  # newest scheduled first
    assert listed(ctx, user_id="alice") == ["a3", "a2", "a1"]
    assert listed(ctx, statuses=["failed", "cancelled"]) == ["a3", "b1"]
    assert listed(ctx, trigger_type="reengagement") == ["a3"]
    assert listed(ctx, since="2026-11-20T03:00Z", until="2026-11-20T09:00Z") == ["a2", "b1"]
    assert listed(ctx, limit=2) == ["a3", "a2"]
    assert listed(ctx, user_id="carol") == []


def test_list_reads_naive_times_in_the_scheduler_zone(make_ctx: object) -> None:
    ctx = make_ctx(SCHEDULER_TIMEZONE="Asia/Tokyo")  # type: ignore[operator]
    seed(ctx)
    # 2026-11-20 12:00 in Tokyo is 03:00 UTC
    assert listed(ctx, since="2026-11-20T12:00") == ["a3", "a2", "b1"]


def test_list_never_carries_message_content(ctx: Context) -> None:
    seed(ctx)
    doc = list_followups(ctx).to_json()
    assert doc["count"] == 4
    assert all("message_content" not in r for r in doc["followups"])


@pytest.mark.parametrize("kw", [
    {"statuses": ["done"]}, {"trigger_type": "birthday"}, {"limit": -1},
    {"since": "yesterday"}, {"since": "2026-11-21", "until": "2026-11-20"},
])
def test_list_refuses_bad_filters(ctx: Context, kw: dict[str, object]) -> None:
    with pytest.raises(InputError):
        list_followups(ctx, **kw)  # type: ignore[arg-type]


def test_show_hides_message_unless_asked(ctx: Context) -> None:
    add_followup(ctx, id="x", message_content="Hi Alice, your booking B-7",
                 trigger_data={"event_date": "2026-11-14T18:00:00+00:00",
                               "custom_message": "Alice's anniversary"})
    hidden = show_followup(ctx, "x").to_json()
    assert hidden["message_content"] is None
    assert hidden["message_shown"] is False
    assert hidden["trigger_data"]["custom_message"] != "Alice's anniversary"
    assert hidden["trigger_data"]["event_date"] == "2026-11-14T18:00:00+00:00"
    shown = show_followup(ctx, "x", show_message=True).to_json()
    assert shown["message_content"] == "Hi Alice, your booking B-7"
    assert shown["trigger_data"]["custom_message"] == "Alice's anniversary"
    # the whole row: every column of the table
    assert {"next_attempt_at", "locked_until", "retry_count", "error_message",
            "created_at"} <= set(shown)


def test_show_unknown_id(ctx: Context) -> None:
    with pytest.raises(NotFoundError):
        show_followup(ctx, "nope")


def test_retry_puts_failed_back_to_pending_due_now(ctx: Context, clock: FakeClock) -> None:
    add_followup(ctx, id="f", status="failed", retry_count=4, error_message="HTTP 503",
                 scheduled_at=clock.now - timedelta(days=1),
                 next_attempt_at=clock.now - timedelta(hours=3),
                 last_attempt_at=clock.now - timedelta(hours=3))
    result = retry(ctx, ["f"])
    assert result.exit_code == ExitCode.OK
    assert result.retried == ["f"]
    [row] = rows(ctx)
    assert row["status"] == "pending"
    assert row["next_attempt_at"] == clock.now
    assert row["retry_count"] == 0
    assert row["scheduled_at"] == clock.now - timedelta(days=1)  # never moves
    assert row["error_message"] == "HTTP 503"  # kept until the next attempt


def test_retry_exit_codes_highest_wins(ctx: Context) -> None:
    add_followup(ctx, id="f", status="failed")
    add_followup(ctx, id="p", status="pending")
    add_followup(ctx, id="e", status="executed")
    result = retry(ctx, ["f", "p", "e"])
    assert [(o.id, o.outcome) for o in result.outcomes] == [
        ("f", "retried"), ("p", "not_failed"), ("e", "not_failed")]
    assert result.exit_code == ExitCode.REFUSED
    assert retry(ctx, ["missing"]).exit_code == ExitCode.INVALID
    assert retry(ctx, ["missing", "e"]).exit_code == ExitCode.REFUSED  # 3 beats 2
    assert {r["id"]: r["status"] for r in rows(ctx)} == {
        "f": "pending", "p": "pending", "e": "executed"}


@pytest.mark.parametrize("meanwhile", ["retried", "deleted"])
@pytest.mark.postgres
def test_retry_reports_what_it_did_when_another_writer_came_first(
        pg_url: str, monkeypatch: pytest.MonkeyPatch, meanwhile: str) -> None:
    """Another retry (or cleanup --include-failed, which takes no guard) changes the row
    between retry's first read and its update: it must not report `retried` for a row it
    did not put back (it did, from the stage's decision), nor `at_cap` because the row's
    own pending copy counted against its user."""
    import sqlalchemy as sa

    from followup_cli.db.schema import scheduled_followups as sf
    from followup_cli.settings import load_settings
    from followup_cli.store import maintenance

    ctx = Context(load_settings({"DATABASE_URL": pg_url,
                                 "FOLLOWUP_MAX_PENDING_PER_USER": "1"}))
    add_followup(ctx, id="f", status="failed")
    real = maintenance.failed_rows
    calls: list[int] = []

    def first_read_then_the_other_writer(conn: object, ids: list[str]) -> object:
        found = real(conn, ids)  # type: ignore[arg-type]
        if not calls:
            calls.append(1)
            with ctx.db.transaction() as other:  # commits before retry goes on
                if meanwhile == "retried":
                    other.execute(sa.update(sf).values(status="pending"))
                else:
                    other.execute(sa.delete(sf))
        return found

    monkeypatch.setattr(maintenance, "failed_rows", first_read_then_the_other_writer)
    try:
        result = retry(ctx, ["f"])
    finally:
        ctx.close()
    expected = "not_failed" if meanwhile == "retried" else "not_found"
    assert [(o.id, o.outcome) for o in result.outcomes] == [("f", expected)]
    assert result.retried == []


def test_retry_keeps_one_live_reengagement_per_user(ctx: Context) -> None:
    add_followup(ctx, id="old", user_id="u", trigger_type="reengagement", status="failed")
    add_followup(ctx, id="live", user_id="u", trigger_type="reengagement", status="pending")
    result = retry(ctx, ["old"])
    assert result.outcomes[0].outcome == "live_reengagement"
    assert result.exit_code == ExitCode.REFUSED
    assert {r["id"]: r["status"] for r in rows(ctx)} == {"old": "failed", "live": "pending"}


def test_retry_respects_the_per_user_cap(make_ctx, clock: FakeClock) -> None:
    ctx = make_ctx(FOLLOWUP_MAX_PENDING_PER_USER=1)
    add_followup(ctx, id="failed", user_id="u", status="failed",
                 event_at=clock.now - timedelta(days=10))
    add_followup(ctx, id="pending", user_id="u", status="pending",
                 event_at=clock.now + timedelta(days=10))
    result = retry(ctx, ["failed"])
    assert [(o.id, o.outcome) for o in result.outcomes] == [("failed", "at_cap")]
    assert result.exit_code == ExitCode.REFUSED
    assert {r["id"]: r["status"] for r in rows(ctx)} == {"failed": "failed",
                                                         "pending": "pending"}


def test_retry_does_not_duplicate_a_pending_post_event(ctx: Context, clock: FakeClock) -> None:
    event = clock.now - timedelta(days=2)
    add_followup(ctx, id="a", user_id="u", status="failed", event_at=event)
    add_followup(ctx, id="b", user_id="u", status="pending", event_at=event + timedelta(hours=5))
    add_followup(ctx, id="c", user_id="u", status="failed", event_at=event + timedelta(days=5))
    result = retry(ctx, ["a", "c"])
    assert [(o.id, o.outcome) for o in result.outcomes] == [
        ("a", "duplicate_pending"), ("c", "retried")]
    assert result.exit_code == ExitCode.REFUSED
    # two failed ones of the same event: only the first comes back
    add_followup(ctx, id="d", user_id="v", status="failed", event_at=event)
    add_followup(ctx, id="e", user_id="v", status="failed", event_at=event)
    assert [o.outcome for o in retry(ctx, ["d", "e"]).outcomes] == [
        "retried", "duplicate_pending"]

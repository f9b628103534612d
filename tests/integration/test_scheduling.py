"""Scheduling rules on real SQLite and real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.errors import InputError, RuleViolation
from followup_cli.service.context import Context
from followup_cli.service.requests import post_event_request, reengagement_request
from followup_cli.service.scheduling import (
    cancel_ids,
    cancel_user,
    schedule_post_event,
    schedule_reengagement,
)
from tests.helpers import add_conversation, rows


def post(ctx: Context, user: str = "u1", conv: str = "c1", event: str = "2026-11-14T18:00",
         **kw: str | None):
    req = post_event_request(ctx.settings.timezone, user_id=user, conversation_id=conv,
                             event_date=event, **kw)
    return schedule_post_event(ctx, req)


def test_post_event_row_matches_the_guide(ctx: Context) -> None:
    result = post(ctx, booking_id="B-1", event="2026-11-14T18:00:00-08:00")
    assert result.status == "scheduled"
    [row] = rows(ctx)
    assert row["id"] == result.id
    assert row["status"] == "pending"
    assert row["trigger_type"] == "post_event"
    assert row["trigger_data"]["event_date"] == "2026-11-15T02:00:00+00:00"
    assert row["trigger_data"]["booking_id"] == "B-1"
    assert row["scheduled_at"] == datetime(2026, 11, 16, 2, 0, tzinfo=UTC)
    assert row["next_attempt_at"] == row["scheduled_at"]
    assert row["template_id"] == "post_event_neutral_emotion"
    assert "November 15, 2026" in row["message_content"]  # event date in UTC, the zone
    assert row["retry_count"] == 0
    assert row["created_at"] == ctx.now()


@pytest.mark.parametrize(("scores", "template"), [
    ([0.9, 0.8, 0.7], "post_event_high_emotion"),
    ([0.7, 0.7, 0.7], "post_event_high_emotion"),  # exactly 0.7 is high
    ([0.1, 0.2, 0.6, 0.9, 0.7], "post_event_neutral_emotion"),  # 2.5/5 = 0.5
    ([0.4], "post_event_neutral_emotion"),
    ([0.39999], "post_event_low_emotion"),
    ([], "post_event_neutral_emotion"),
])
def test_template_from_last_five_scores(ctx: Context, scores: list[float], template: str
                                        ) -> None:
    add_conversation(ctx, "c1", "u1", scores)
    assert post(ctx).template_id == template


def test_only_the_last_five_scored_messages_count(ctx: Context) -> None:
    # six old lows, then five highs and unscored chatter: the highs decide
    add_conversation(ctx, "c1", "u1", [0.0] * 6 + [0.9] * 5 + [None, None])
    result = post(ctx)
    assert result.template_id == "post_event_high_emotion"
    assert result.emotion_mean == 0.9


def test_mean_of_exactly_point_seven_from_float_sums_is_high(ctx: Context) -> None:
    # 0.6 + 0.8 + 0.7 = 2.0999999999999996 in binary floating point
    add_conversation(ctx, "c1", "u1", [0.6, 0.8, 0.7])
    assert post(ctx).template_id == "post_event_high_emotion"


def test_duplicate_within_one_day_reports_existing(ctx: Context) -> None:
    first = post(ctx, event="2026-11-14T18:00")
    again = post(ctx, event="2026-11-15T17:00")  # 23 h later
    assert again.status == "duplicate"
    assert again.id == first.id
    other_user = post(ctx, user="u2", event="2026-11-14T18:00")
    later = post(ctx, event="2026-11-15T18:00:01")  # just over a day
    assert other_user.status == later.status == "scheduled"
    assert len(rows(ctx)) == 3


def test_cancelled_one_is_not_a_duplicate(ctx: Context) -> None:
    first = post(ctx)
    cancel_ids(ctx, [first.id])
    assert post(ctx).status == "scheduled"


def test_cap_refuses_and_writes_nothing(make_ctx) -> None:
    ctx = make_ctx(FOLLOWUP_MAX_PENDING_PER_USER=2)
    post(ctx, event="2026-11-01T10:00")
    post(ctx, event="2026-11-05T10:00")
    with pytest.raises(RuleViolation, match="cap is 2"):
        post(ctx, event="2026-11-10T10:00")
    assert len(rows(ctx)) == 2


def test_missing_template_variable_is_an_input_error_and_writes_nothing(tmp_path, make_ctx
                                                                         ) -> None:
    tpl = tmp_path / "t.toml"
    tpl.write_text('[templates.post_event_neutral_emotion]\ncontent = "Booking {booking_id}"\n')
    ctx = make_ctx(FOLLOWUP_TEMPLATES_FILE=tpl)
    with pytest.raises(InputError, match="booking_id"):
        post(ctx)
    assert rows(ctx) == []
    assert post(ctx, booking_id="B-9").status == "scheduled"
    assert rows(ctx)[0]["message_content"] == "Booking B-9"


def test_ids_with_quotes_semicolons_unicode_stored_verbatim(ctx: Context) -> None:
    user = "o'brien\"; DROP TABLE scheduled_followups; --ユーザー"
    result = post(ctx, user=user, conv="κόσμε;'")
    [row] = rows(ctx)
    assert row["user_id"] == user and row["conversation_id"] == "κόσμε;'"
    assert result.user_id == user


def test_delay_is_elapsed_time_across_dst(make_ctx) -> None:
    ctx = make_ctx(SCHEDULER_TIMEZONE="America/Los_Angeles")
    # 2026-03-07 18:00 PST; DST starts 2026-03-08 02:00 → 24 h later is 19:00 PDT
    result = post(ctx, event="2026-03-07T18:00")
    assert result.scheduled_at == datetime(2026, 3, 9, 2, 0, tzinfo=UTC)
    local = result.scheduled_at.astimezone(ctx.settings.timezone)
    assert (local.hour, local.day) == (19, 8)


def test_reengagement_one_per_period(ctx: Context, clock) -> None:
    add_conversation(ctx, "c1", "u1", [0.2, 0.1], at=clock.now - timedelta(days=40))
    first = schedule_reengagement(ctx, reengagement_request(ctx.settings.timezone,
                                                            user_id="u1"))
    assert first.status == "scheduled"
    assert first.template_id == "reengagement_low_emotion"
    [row] = rows(ctx)
    assert row["conversation_id"] == "c1"
    assert row["trigger_data"] == {"days_inactive": 40}
    again = schedule_reengagement(ctx, reengagement_request(ctx.settings.timezone,
                                                            user_id="u1"))
    assert (again.status, again.id) == ("duplicate", first.id)


def test_cancel_rules(ctx: Context) -> None:
    a, b = post(ctx, event="2026-11-01T10:00"), post(ctx, event="2026-11-05T10:00")
    with ctx.db.transaction() as conn:
        conn.execute(sa.update(sf).where(sf.c.id == b.id).values(status="executed"))
    result = cancel_ids(ctx, [a.id, a.id, "nope", b.id])
    assert [o.outcome for o in result.outcomes] == ["cancelled", "not_found", "not_cancellable"]
    assert result.exit_code == 3
    again = cancel_ids(ctx, [a.id])
    assert again.outcomes[0].outcome == "already_cancelled" and again.exit_code == 0
    assert cancel_ids(ctx, ["nope"]).exit_code == 2


def test_cancel_by_user_and_trigger_type(ctx: Context, clock) -> None:
    p = post(ctx)
    r = schedule_reengagement(ctx, reengagement_request(ctx.settings.timezone, user_id="u1"))
    post(ctx, user="u2")
    result = cancel_user(ctx, "u1", "reengagement")
    assert result.cancelled == [r.id]
    assert cancel_user(ctx, "u1", None).cancelled == [p.id]
    statuses = {row["user_id"] + row["trigger_type"]: row["status"] for row in rows(ctx)}
    assert statuses == {"u1post_event": "cancelled", "u1reengagement": "cancelled",
                        "u2post_event": "pending"}

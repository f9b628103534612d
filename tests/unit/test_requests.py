"""Validation of scheduling input: each bad value is one clear InputError."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from followup_cli.errors import InputError
from followup_cli.service.requests import post_event_request, reengagement_request

UTCZ = ZoneInfo("UTC")
LA = ZoneInfo("America/Los_Angeles")


def post(**kw: object):
    args: dict[str, object] = {"user_id": "u", "conversation_id": "c",
                               "event_date": "2026-11-14T18:00"}
    args.update(kw)
    return post_event_request(UTCZ, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "needle"), [
    ({"event_date": "2026-02-30"}, "event_date"),
    ({"event_date": "2026-02-30T10:00"}, "event_date"),
    ({"event_date": "yesterday"}, "event_date"),
    ({"event_date": ""}, "event_date"),
    ({"event_date": "2026-11-14T25:00"}, "event_date"),
    ({"delay_hours": "-1"}, "delay_hours"),
    ({"delay_hours": "a day"}, "delay_hours"),
    ({"delay_hours": "inf"}, "delay_hours"),
    ({"user_id": ""}, "user_id"),
    ({"user_id": "   "}, "user_id"),
    ({"user_id": "x" * 256}, "user_id"),
    ({"conversation_id": ""}, "conversation_id"),
    ({"user_id": "a\x00b"}, "user_id"),
    ({"custom_message": "x" * 2001}, "custom_message"),
    ({"template_id": "t" * 51}, "template"),
])
def test_bad_post_event_input(kw: dict[str, object], needle: str) -> None:
    with pytest.raises(InputError) as info:
        post(**kw)
    assert str(info.value).startswith(needle)
    assert "\n" not in str(info.value)


def test_limits_are_inclusive() -> None:
    req = post(custom_message="x" * 2000, user_id="u" * 255, delay_hours="0")
    assert req.delay_hours == 0.0 and len(req.custom_message or "") == 2000


def test_naive_time_is_read_in_the_scheduler_zone() -> None:
    req = post_event_request(LA, user_id="u", conversation_id="c",
                             event_date="2026-11-14T18:00")
    assert req.event_at == datetime(2026, 11, 15, 2, 0, tzinfo=UTC)


def test_offset_and_z_are_respected() -> None:
    assert post(event_date="2026-11-14T18:00Z").event_at == datetime(2026, 11, 14, 18,
                                                                      tzinfo=UTC)
    assert post(event_date="2026-11-14T18:00+09:00").event_at == datetime(
        2026, 11, 14, 9, tzinfo=UTC)


@pytest.mark.parametrize(("kw", "needle"), [
    ({"days_inactive": "-1"}, "days_inactive"),
    ({"days_inactive": "thirty"}, "days_inactive"),
    ({"at": "not a time"}, "at"),
    ({"user_id": ""}, "user_id"),
])
def test_bad_reengagement_input(kw: dict[str, object], needle: str) -> None:
    args: dict[str, object] = {"user_id": "u"}
    args.update(kw)
    with pytest.raises(InputError) as info:
        reengagement_request(UTCZ, **args)  # type: ignore[arg-type]
    assert str(info.value).startswith(needle)


def test_reengagement_defaults_are_left_to_the_service() -> None:
    req = reengagement_request(UTCZ, user_id="u")
    assert (req.conversation_id, req.days_inactive, req.at) == (None, None, None)


@pytest.mark.parametrize("event", ["0001-01-01T00:00", "9999-12-31T23:00", "1899-12-31"])
def test_times_far_from_now_are_refused_not_crashing(event: str) -> None:
    with pytest.raises(InputError, match="out of range"):
        post_event_request(LA, user_id="u", conversation_id="c", event_date=event)


def test_out_of_range_numbers_are_refused() -> None:
    with pytest.raises(InputError, match="delay_hours"):
        post(delay_hours="1e300")
    with pytest.raises(InputError, match="days_inactive"):
        reengagement_request(UTCZ, user_id="u", days_inactive="99999999")

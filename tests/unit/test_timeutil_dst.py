"""The time-zone rules: gap times move forward by the gap, repeated times are their first
occurrence (fold=0), delays are elapsed time, and a local day can be 23 or 25 hours long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from followup_cli.timeutil import after_elapsed, human_date, local_day_bounds, parse_instant

LA = ZoneInfo("America/Los_Angeles")
LONDON = ZoneInfo("Europe/London")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(("zone", "text", "expected", "local_wall"), [
    # spring forward: 02:00-03:00 does not exist; 02:30 is read as 03:30 daylight time
    (LA, "2026-03-08T02:30", utc(2026, 3, 8, 10, 30), "03:30"),
    (LA, "2026-03-08T02:00", utc(2026, 3, 8, 10, 0), "03:00"),
    # London: 01:00-02:00 does not exist; 01:30 is read as 02:30 BST
    (LONDON, "2026-03-29T01:30", utc(2026, 3, 29, 1, 30), "02:30"),
])
def test_gap_time_moves_forward_by_the_gap(zone: ZoneInfo, text: str, expected: datetime,
                                           local_wall: str) -> None:
    instant = parse_instant(text, zone, name="t")
    assert instant == expected
    assert instant.astimezone(zone).strftime("%H:%M") == local_wall


@pytest.mark.parametrize(("zone", "text", "expected"), [
    # fall back: 01:00-02:00 happens twice; the first (daylight) occurrence is meant
    (LA, "2026-11-01T01:30", utc(2026, 11, 1, 8, 30)),  # 01:30 PDT, not 09:30 (PST)
    (LONDON, "2026-10-25T01:30", utc(2026, 10, 25, 0, 30)),  # 01:30 BST, not 01:30 GMT
])
def test_repeated_time_is_its_first_occurrence(zone: ZoneInfo, text: str,
                                               expected: datetime) -> None:
    assert parse_instant(text, zone, name="t") == expected


def test_an_explicit_offset_chooses_the_second_occurrence() -> None:
    assert parse_instant("2026-11-01T01:30-08:00", LA, name="t") == utc(2026, 11, 1, 9, 30)


@pytest.mark.parametrize(("zone", "event", "hours", "wall_after"), [
    (LA, "2026-03-07T18:00", 24, "2026-03-08 19:00"),  # 24 h across spring forward
    (LA, "2026-10-31T18:00", 24, "2026-11-01 17:00"),  # 24 h across fall back
    (LONDON, "2026-03-28T18:00", 24, "2026-03-29 19:00"),
    (LONDON, "2026-10-24T18:00", 24, "2026-10-25 17:00"),
])
def test_delay_is_elapsed_time_across_the_change(zone: ZoneInfo, event: str, hours: int,
                                                 wall_after: str) -> None:
    start = parse_instant(event, zone, name="event_date")
    due = after_elapsed(start, hours)
    assert due - start == timedelta(hours=hours)
    assert due.tzinfo is UTC
    assert due.astimezone(zone).strftime("%Y-%m-%d %H:%M") == wall_after


@pytest.mark.parametrize(("zone", "now", "hours", "start"), [
    (LA, utc(2026, 3, 8, 20), 23, utc(2026, 3, 8, 8)),  # spring forward day
    (LA, utc(2026, 11, 1, 20), 25, utc(2026, 11, 1, 7)),  # fall back day
    (LA, utc(2026, 11, 20, 12), 24, utc(2026, 11, 20, 8)),
    (LONDON, utc(2026, 3, 29, 12), 23, utc(2026, 3, 29, 0)),
    (LONDON, utc(2026, 10, 25, 12), 25, utc(2026, 10, 24, 23)),
])
def test_today_bounds_on_23_and_25_hour_days(zone: ZoneInfo, now: datetime, hours: int,
                                             start: datetime) -> None:
    lo, hi = local_day_bounds(now, zone)
    assert lo == start
    assert hi - lo == timedelta(hours=hours)
    assert lo <= now < hi


def test_today_is_the_zones_today_not_utcs() -> None:
    # 03:00 UTC on the 21st is still the 20th in Los Angeles
    lo, hi = local_day_bounds(utc(2026, 11, 21, 3), LA)
    assert (lo, hi) == (utc(2026, 11, 20, 8), utc(2026, 11, 21, 8))


def test_event_date_reads_in_the_scheduler_zone() -> None:
    assert human_date(utc(2026, 11, 15, 2), LA) == "November 14, 2026"
    assert human_date(utc(2026, 11, 15, 2), ZoneInfo("UTC")) == "November 15, 2026"

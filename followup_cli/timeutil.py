"""Time parsing and zone arithmetic. Instants are aware datetimes in UTC everywhere inside;
local time exists only at the edges (parsing input, 'today', send windows, display)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from followup_cli.errors import InputError

MIN_YEAR, MAX_YEAR = 1900, 9000


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_instant(text: str, zone: ZoneInfo, *, name: str) -> datetime:
    """ISO 8601 → aware UTC. A time without offset is local to `zone`, read with fold=0 as
    zoneinfo does: a time in the spring-forward gap moves forward by the gap, a repeated
    fall-back time is its first occurrence. A bare date is local midnight."""
    raw = text.strip()
    if not raw:
        raise InputError(f"{name}: empty time (expected ISO 8601, e.g. 2026-11-14T18:00)")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InputError(
            f"{name}: {raw!r} is not a valid ISO 8601 time (e.g. 2026-11-14T18:00 or "
            "2026-11-14T18:00:00-08:00)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone, fold=0)
    # Far from datetime's own limits, so that windows (±1 day) and delays stay computable.
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise InputError(f"{name}: {raw!r} is out of range (years {MIN_YEAR} to {MAX_YEAR})")
    return value.astimezone(UTC)


def after_elapsed(start: datetime, hours: float) -> datetime:
    """`hours` of elapsed (not wall-clock) time after an instant: DST cannot shift it."""
    try:
        return (start.astimezone(UTC) + timedelta(hours=hours)).astimezone(UTC)
    except OverflowError:  # 9999-12-31 plus a day
        raise InputError(f"a time {hours:g} hours after {start.isoformat()} is out of "
                         "range") from None


def whole_days(earlier: datetime, later: datetime) -> int:
    """Whole days of elapsed time between two instants (never negative): how
    `days_inactive` counts, whatever the local calendar does."""
    return max(0, (later - earlier) // timedelta(days=1))


def local_day_bounds(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants where the zone's current local day starts and ends (23 or 25 hours
    long across a DST change)."""
    local = now.astimezone(zone)
    start = datetime(local.year, local.month, local.day, tzinfo=zone)
    nxt = start.date() + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


def human_date(instant: datetime, zone: ZoneInfo) -> str:
    """How {event_date} reads in a message: 'November 14, 2026' in the scheduler zone (in
    English whatever the host's locale: the templates are English)."""
    local = instant.astimezone(zone)
    return f"{MONTHS[local.month - 1]} {local.day}, {local.year}"


def iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.astimezone(UTC).isoformat()


def sqlite_text(instant: datetime) -> str:
    """An instant as SQLite stores it: the text SQLAlchemy's SQLite DateTime writes of the
    naive UTC value UTCDateTime gives it (the raw paths write it the same way)."""
    return instant.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def as_utc(value: Any) -> datetime | None:
    """A timestamp read back on a raw connection, as UTCDateTime reads it: SQLite gives
    text, psycopg2 an aware datetime in the session's time zone."""
    if value is None:
        return None
    stamp: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def utc_stamp(value: Any) -> datetime:
    """as_utc of a value that cannot be NULL (a NOT NULL column, the server's clock)."""
    stamp = as_utc(value)
    if stamp is None:
        raise ValueError("a timestamp that cannot be NULL was NULL")
    return stamp

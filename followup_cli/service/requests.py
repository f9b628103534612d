"""Validation of scheduling input: raw strings in, typed requests out (or InputError).

Shared by the single `schedule` commands and `schedule import`, so a row of a file is held
to exactly the rules of a command line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from followup_cli.errors import InputError
from followup_cli.settings import MAX_DAYS, MAX_DELAY_HOURS
from followup_cli.templates import MAX_CUSTOM_MESSAGE, MAX_TEMPLATE_ID
from followup_cli.timeutil import parse_instant

MAX_ID = 255


@dataclass(frozen=True)
class PostEventRequest:
    user_id: str
    conversation_id: str
    event_at: datetime  # aware UTC
    booking_id: str | None = None
    custom_message: str | None = None
    delay_hours: float | None = None  # None: FOLLOWUP_DELAY_HOURS
    template_id: str | None = None  # None: chosen by emotion


@dataclass(frozen=True)
class ReengagementRequest:
    user_id: str
    conversation_id: str | None = None  # None: the user's most recent conversation
    days_inactive: int | None = None  # None: days since the user's last message
    at: datetime | None = None  # None: now
    template_id: str | None = None


def storable_text(name: str, value: str) -> str:
    """Text a database can store: no NUL, and every character encodable as UTF-8 (Python
    carries undecodable input bytes as lone surrogates, which neither database takes)."""
    if "\x00" in value:
        raise InputError(f"{name}: contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{name}: not UTF-8 text") from None
    return value


def require_id(name: str, value: str | None) -> str:
    """Ids are stored verbatim (quotes, semicolons, unicode are fine) but must be usable."""
    if value is None or not value.strip():
        raise InputError(f"{name}: must not be empty")
    if len(value) > MAX_ID:
        raise InputError(f"{name}: longer than {MAX_ID} characters")
    return storable_text(name, value)


def optional_id(name: str, value: str | None) -> str | None:
    return None if value is None or value == "" else require_id(name, value)


def parse_hours(name: str, value: str | float | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: {value!r} is not a number of hours") from None
    if not math.isfinite(hours) or hours < 0 or hours > MAX_DELAY_HOURS:
        raise InputError(f"{name}: {value!r} must be a number of hours from 0 to "
                         f"{MAX_DELAY_HOURS}")
    return hours


def parse_days(name: str, value: str | int | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        days = int(str(value).strip())
    except ValueError:
        raise InputError(f"{name}: {value!r} is not a whole number of days") from None
    if days < 0 or days > MAX_DAYS:
        raise InputError(f"{name}: {value!r} must be a whole number of days from 0 to "
                         f"{MAX_DAYS}")
    return days


def check_custom_message(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_CUSTOM_MESSAGE:
        raise InputError(
            f"custom_message: {len(value)} characters, at most {MAX_CUSTOM_MESSAGE} allowed")
    return storable_text("custom_message", value)


def check_template_id(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_TEMPLATE_ID:
        raise InputError(f"template: id longer than {MAX_TEMPLATE_ID} characters")
    return storable_text("template", value)


def post_event_request(
    zone: ZoneInfo,
    *,
    user_id: str | None,
    conversation_id: str | None,
    event_date: str | None,
    booking_id: str | None = None,
    custom_message: str | None = None,
    delay_hours: str | float | None = None,
    template_id: str | None = None,
) -> PostEventRequest:
    if event_date is None:
        raise InputError("event_date: required for a post-event follow-up")
    return PostEventRequest(
        user_id=require_id("user_id", user_id),
        conversation_id=require_id("conversation_id", conversation_id),
        event_at=parse_instant(event_date, zone, name="event_date"),
        booking_id=optional_id("booking_id", booking_id),
        custom_message=check_custom_message(custom_message),
        delay_hours=parse_hours("delay_hours", delay_hours),
        template_id=check_template_id(template_id),
    )


def reengagement_request(
    zone: ZoneInfo,
    *,
    user_id: str | None,
    conversation_id: str | None = None,
    days_inactive: str | int | None = None,
    at: str | None = None,
    template_id: str | None = None,
) -> ReengagementRequest:
    return ReengagementRequest(
        user_id=require_id("user_id", user_id),
        conversation_id=optional_id("conversation_id", conversation_id),
        days_inactive=parse_days("days_inactive", days_inactive),
        at=None if at in (None, "") else parse_instant(str(at), zone, name="at"),
        template_id=check_template_id(template_id),
    )

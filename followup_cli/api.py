"""The Python API: schedule at booking time from application code, without a process per
call. The same admission path, rules and results as the commands.

    from followup_cli.api import FollowUps

    followups = FollowUps("postgresql://app:secret@db:5432/app")
    result = followups.schedule_post_event("u42", "c7", event_date=booking.ends_at,
                                           booking_id=booking.id)
    if result["status"] == "duplicate":
        ...  # the guide's `schedule_post_event_followup()` returned None here

One `FollowUps` holds one connection pool; share it across threads and requests, and
`close()` it at shutdown (or use it as a context manager). Settings come from the
environment, like the commands' (FOLLOWUP_*, SCHEDULER_TIMEZONE, ...), and keyword
arguments override them. Every method returns what the command's `--json` prints and raises
the project's exceptions (`followup_cli.errors`), each carrying its `exit_code`.
"""

from __future__ import annotations

from datetime import date, datetime
from types import TracebackType
from typing import Any

from followup_cli.errors import InputError, SettingsError

# keyword → environment variable
SETTINGS = {
    "timezone": "SCHEDULER_TIMEZONE",
    "delay_hours": "FOLLOWUP_DELAY_HOURS",
    "inactive_days": "REENGAGEMENT_INACTIVE_DAYS",
    "enabled": "SCHEDULER_ENABLED",
    "sender": "FOLLOWUP_SENDER",
    "max_pending_per_user": "FOLLOWUP_MAX_PENDING_PER_USER",
    "max_retries": "FOLLOWUP_MAX_RETRIES",
    "templates_file": "FOLLOWUP_TEMPLATES_FILE",
    "lease_seconds": "FOLLOWUP_LEASE_SECONDS",
    "send_window": "FOLLOWUP_SEND_WINDOW",
    "webhook_secret": "FOLLOWUP_WEBHOOK_SECRET",
    "encryption_key": "FOLLOWUP_ENCRYPTION_KEY",
}


def _time(value: datetime | date | str | None) -> str | None:
    """An instant as the commands take it: aware datetimes keep their offset, naive ones
    (and strings without an offset) are read in SCHEDULER_TIMEZONE; a date is its
    midnight there, as `--event-date 2026-11-14` is."""
    if isinstance(value, date):  # datetime included
        return value.isoformat()
    if value is None or isinstance(value, str):
        return value
    raise InputError(f"a time must be a datetime, a date or ISO 8601 text, not "
                     f"{type(value).__name__}")


class FollowUps:
    """Schedule, cancel and check follow-ups from application code."""

    def __init__(self, database_url: str | None = None, **settings: Any) -> None:
        from followup_cli.service.context import Context
        from followup_cli.settings import load_settings

        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise SettingsError(f"FollowUps: unknown setting {unknown[0]!r} "
                                f"(known: {', '.join(sorted(SETTINGS))})")
        overrides: dict[str, str | None] = {
            SETTINGS[k]: None if v is None else (str(v).lower() if isinstance(v, bool)
                                                 else str(v))
            for k, v in settings.items()}
        overrides["DATABASE_URL"] = database_url
        self._ctx = Context(load_settings(overrides=overrides))

    def schedule_post_event(self, user_id: str, conversation_id: str,
                            event_date: datetime | date | str, booking_id: str | None = None,
                            custom_message: str | None = None) -> dict[str, Any]:
        """A follow-up FOLLOWUP_DELAY_HOURS after the event (`followup schedule post-event`):
        `status` is `scheduled` or `duplicate` (then `id` is the pending one)."""
        from followup_cli.service.requests import post_event_request
        from followup_cli.service.scheduling import schedule_post_event

        request = post_event_request(
            self._ctx.settings.timezone, user_id=user_id, conversation_id=conversation_id,
            event_date=_time(event_date), booking_id=booking_id,
            custom_message=custom_message)
        return schedule_post_event(self._ctx, request).to_json()

    def schedule_reengagement(self, user_id: str, conversation_id: str | None = None,
                              days_inactive: int | None = None,
                              at: datetime | date | str | None = None) -> dict[str, Any]:
        """A re-engagement message (`followup schedule reengagement`)."""
        from followup_cli.service.requests import reengagement_request
        from followup_cli.service.scheduling import schedule_reengagement

        request = reengagement_request(
            self._ctx.settings.timezone, user_id=user_id, conversation_id=conversation_id,
            days_inactive=days_inactive, at=_time(at))
        return schedule_reengagement(self._ctx, request).to_json()

    def cancel(self, followup_id: str) -> dict[str, Any]:
        """Cancel a pending follow-up (`followup cancel ID`); the outcome is in `results`.
        An unknown id raises NotFoundError; one that is executed or failed RuleViolation."""
        from followup_cli.errors import ExitCode, NotFoundError, RuleViolation
        from followup_cli.service.scheduling import cancel_ids

        result = cancel_ids(self._ctx, [followup_id])
        if result.exit_code == ExitCode.INVALID:
            raise NotFoundError(f"no follow-up with id {followup_id!r}")
        if result.exit_code == ExitCode.REFUSED:
            raise RuleViolation(f"follow-up {followup_id} cannot be cancelled: it is "
                                f"{result.outcomes[0].status}")
        return result.to_json()

    def health_check(self) -> dict[str, Any]:
        """The guide's health check and its alerts (`followup health --json`)."""
        from followup_cli.service.monitoring import check_health

        return check_health(self._ctx).to_json()

    def close(self) -> None:
        """Close the connection pool."""
        self._ctx.close()

    def __enter__(self) -> FollowUps:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

"""Looking at follow-ups (`list`, `show`) and templates (`templates list|preview`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from followup_cli.db.schema import STATUSES, TRIGGER_TYPES
from followup_cli.errors import DecryptError, InputError, NotFoundError
from followup_cli.service.context import Context
from followup_cli.service.requests import (
    check_custom_message,
    optional_id,
    parse_days,
    require_id,
)
from followup_cli.store import followups, monitoring
from followup_cli.templates import VARIABLES, Template
from followup_cli.timeutil import human_date, iso, parse_instant

MAX_LIMIT = 10_000
HIDDEN = "(hidden: --show-message)"
SUMMARY_FIELDS = ("id", "user_id", "conversation_id", "trigger_type", "status",
                  "scheduled_at", "next_attempt_at", "executed_at", "template_id",
                  "retry_count", "created_at")


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()}


@dataclass
class ListResult:
    followups: list[dict[str, Any]]
    limit: int

    def to_json(self) -> dict[str, Any]:
        return {"count": len(self.followups), "limit": self.limit,
                "followups": [_jsonable({k: r.get(k) for k in SUMMARY_FIELDS})
                              for r in self.followups]}


def list_followups(ctx: Context, *, user_id: str | None = None,
                   statuses: list[str] | None = None, trigger_type: str | None = None,
                   since: str | None = None, until: str | None = None,
                   limit: int = 50) -> ListResult:
    """Follow-ups matching the filters, newest scheduled_at first; never message content."""
    wanted = list(dict.fromkeys(statuses or []))
    for status in wanted:
        if status not in STATUSES:
            raise InputError(f"--status: {status!r} is not one of {', '.join(STATUSES)}")
    if trigger_type is not None and trigger_type not in TRIGGER_TYPES:
        raise InputError(f"--trigger-type: {trigger_type!r} is not one of "
                         f"{', '.join(TRIGGER_TYPES)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"--limit: {limit} must be between 1 and {MAX_LIMIT}")
    zone = ctx.settings.timezone
    start = None if since is None else parse_instant(since, zone, name="--since")
    end = None if until is None else parse_instant(until, zone, name="--until")
    if start is not None and end is not None and start >= end:
        raise InputError("--since must be before --until")
    with ctx.db.transaction(readonly=True) as conn:
        rows = monitoring.list_followups(
            conn, user_id=optional_id("--user-id", user_id), statuses=wanted,
            trigger_type=trigger_type, since=start, until=end, limit=limit)
    return ListResult(rows, limit)


@dataclass
class ShowResult:
    row: dict[str, Any]
    message_shown: bool

    def to_json(self) -> dict[str, Any]:
        doc = _jsonable(self.row)
        doc["message_shown"] = self.message_shown
        return doc


def show_followup(ctx: Context, followup_id: str, *, show_message: bool = False) -> ShowResult:
    """Every column of one follow-up. The message and the custom message it was built from
    may hold personal data, so both are withheld unless asked for."""
    followup_id = require_id("follow-up id", followup_id)
    with ctx.db.transaction(readonly=True) as conn:
        row = followups.get(conn, followup_id)
    if row is None:
        raise NotFoundError(f"no follow-up with id {followup_id!r}")
    data = dict(row.get("trigger_data") or {})
    if not show_message:  # withheld, and so never decrypted
        if row.get("message_content") is not None:
            row["message_content"] = None
        if data.get("custom_message"):
            data["custom_message"] = HIDDEN
    else:
        try:
            row["message_content"] = ctx.cipher.open(row.get("message_content"))
            data = ctx.cipher.open_trigger_data(data)
        except DecryptError as error:
            raise DecryptError(f"follow-up {followup_id}: {error}",
                               no_key=error.no_key) from None
    row["trigger_data"] = data
    return ShowResult(row, show_message)


# --- templates --------------------------------------------------------------------------

@dataclass(frozen=True)
class TemplateInfo:
    id: str
    source: str
    placeholders: list[str]
    content: str

    @property
    def first_line(self) -> str:
        return self.content.strip().splitlines()[0]

    @classmethod
    def of(cls, template: Template) -> TemplateInfo:
        ordered = [v for v in VARIABLES if v in template.fields]
        return cls(template.id, template.source, ordered, template.content)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "placeholders": self.placeholders,
                "first_line": self.first_line, "content": self.content}


@dataclass
class TemplateList:
    templates: list[TemplateInfo]
    templates_file: str | None

    def to_json(self) -> dict[str, Any]:
        return {"templates_file": self.templates_file,
                "templates": [t.to_json() for t in self.templates]}


def list_templates(ctx: Context) -> TemplateList:
    """The templates in force: built-ins, overridden or extended by FOLLOWUP_TEMPLATES_FILE."""
    path = ctx.settings.templates_file
    return TemplateList([TemplateInfo.of(t) for t in ctx.templates],
                        None if path is None else str(path))


@dataclass
class TemplatePreview:
    template: TemplateInfo
    values: dict[str, str]
    sampled: list[str]  # placeholders filled with sample values
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.template.id, "source": self.template.source,
                "placeholders": self.template.placeholders, "values": self.values,
                "sampled": self.sampled, "message": self.message}


def preview_template(ctx: Context, template_id: str, *, event_date: str | None = None,
                     booking_id: str | None = None, days_inactive: str | None = None,
                     custom_message: str | None = None) -> TemplatePreview:
    """Render a template as a follow-up would be, with sample values for placeholders not
    given. Values go through the same checks as `schedule`."""
    template = ctx.templates.get(template_id)
    zone = ctx.settings.timezone
    given: dict[str, str | None] = {
        "event_date": None if event_date is None else human_date(
            parse_instant(event_date, zone, name="--event-date"), zone),
        "booking_id": optional_id("--booking-id", booking_id),
        "days_inactive": None if days_inactive is None else str(
            parse_days("--days-inactive", days_inactive)),
        "custom_message": check_custom_message(custom_message),
    }
    samples = {
        "event_date": human_date(ctx.now(), zone),
        "booking_id": "B-1001",
        "days_inactive": str(ctx.settings.inactive_days),
        "custom_message": "See you again soon!",
    }
    values: dict[str, str] = {}
    sampled: list[str] = []
    for name in VARIABLES:
        if name not in template.fields:
            continue
        value = given.get(name)
        if value is None:
            value = samples[name]
            sampled.append(name)
        values[name] = value
    message = ctx.templates.render(template_id, dict(values))
    return TemplatePreview(TemplateInfo.of(template), values, sampled, message)

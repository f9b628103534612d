"""Looking at follow-ups (`list`, `show`) and templates (`templates list|preview`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from followup_cli.db.schema import STATUSES, TRIGGER_TYPES
from followup_cli.errors import DecryptError, InputError, NotFoundError
from followup_cli.service.context import Context
from followup_cli.service.ids import MIN_PREFIX
from followup_cli.service.requests import (
    check_custom_message,
    optional_id,
    parse_days,
    require_id,
)
from followup_cli.store import conversations, followups, monitoring
from followup_cli.templates import (
    VARIABLES,
    Template,
    choose_template,
    emotion_band,
    emotion_mean,
)
from followup_cli.timeutil import human_date, iso, parse_instant

HIDDEN = "(hidden: --show-message)"
SUMMARY_FIELDS = ("id", "user_id", "conversation_id", "trigger_type", "status",
                  "scheduled_at", "next_attempt_at", "executed_at", "template_id",
                  "retry_count", "created_at")


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()}


def summary_json(row: dict[str, Any]) -> dict[str, Any]:
    """One row of `list --json`."""
    return _jsonable({k: row.get(k) for k in SUMMARY_FIELDS})


@dataclass
class ListResult:
    followups: list[dict[str, Any]]
    limit: int  # 0: no limit
    total: int = 0  # every match, however many were listed

    def to_json(self) -> dict[str, Any]:
        return {"count": len(self.followups), "total": self.total, "limit": self.limit,
                "followups": [summary_json(r) for r in self.followups]}


@dataclass
class ListPage:
    """Matching follow-ups as a stream: rows are read from the database as they are used,
    `batch` at a time, so `list --limit 0` over millions needs no more memory than 50."""

    total: int
    limit: int  # 0: no limit
    rows: Iterator[dict[str, Any]]

    @property
    def shown(self) -> int:
        """How many rows the stream will give."""
        return self.total if self.limit == 0 else min(self.total, self.limit)


def _list_filter(ctx: Context, *, user_id: str | None, statuses: list[str] | None,
                 trigger_type: str | None, since: str | None, until: str | None,
                 limit: int) -> monitoring.ListFilter:
    wanted = list(dict.fromkeys(statuses or []))
    for status in wanted:
        if status not in STATUSES:
            raise InputError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    if trigger_type is not None and trigger_type not in TRIGGER_TYPES:
        raise InputError(f"trigger_type: {trigger_type!r} is not one of "
                         f"{', '.join(TRIGGER_TYPES)}")
    if limit < 0:
        raise InputError(f"limit: {limit} must be 0 (no limit) or more")
    zone = ctx.settings.timezone
    start = None if since is None else parse_instant(since, zone, name="since")
    end = None if until is None else parse_instant(until, zone, name="until")
    if start is not None and end is not None and start >= end:
        raise InputError("since must be before until")
    return monitoring.ListFilter(optional_id("user_id", user_id), wanted, trigger_type, start,
                                 end)


@contextlib.contextmanager
def browse_followups(ctx: Context, *, user_id: str | None = None,
                     statuses: list[str] | None = None, trigger_type: str | None = None,
                     since: str | None = None, until: str | None = None,
                     limit: int = 50, batch: int = 1000) -> Iterator[ListPage]:
    """Follow-ups matching the filters, newest scheduled_at first, never message content;
    `limit` 0 means all. The rows stream inside one read-only transaction, open while the
    `with` block runs; `total` counts every match."""
    where = _list_filter(ctx, user_id=user_id, statuses=statuses, trigger_type=trigger_type,
                         since=since, until=until, limit=limit)
    with ctx.db.transaction(readonly=True) as conn:
        total = monitoring.count_followups(conn, where)
        yield ListPage(total, limit, monitoring.iter_followups(
            conn, where, limit=limit or None, batch=batch))


def list_followups(ctx: Context, *, user_id: str | None = None,
                   statuses: list[str] | None = None, trigger_type: str | None = None,
                   since: str | None = None, until: str | None = None,
                   limit: int = 50) -> ListResult:
    """browse_followups, read into a list (for callers that want them all at hand)."""
    with browse_followups(ctx, user_id=user_id, statuses=statuses, trigger_type=trigger_type,
                          since=since, until=until, limit=limit) as page:
        return ListResult(list(page.rows), limit, page.total)


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
        hint = (f" (an id prefix needs at least {MIN_PREFIX} characters)"
                if len(followup_id) < MIN_PREFIX else "")
        raise NotFoundError(f"no follow-up with id {followup_id!r}{hint}")
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
                     booking_id: str | None = None, days_inactive: int | str | None = None,
                     custom_message: str | None = None) -> TemplatePreview:
    """Render a template as a follow-up would be, with sample values for placeholders not
    given. Values go through the same checks as `schedule`."""
    template = ctx.templates.get(template_id)
    zone = ctx.settings.timezone
    given: dict[str, str | None] = {
        "event_date": None if event_date is None else human_date(
            parse_instant(event_date, zone, name="event_date"), zone),
        "booking_id": optional_id("booking_id", booking_id),
        "days_inactive": None if days_inactive is None else str(
            parse_days("days_inactive", days_inactive)),
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


# --- templates explain ------------------------------------------------------------------

@dataclass
class TemplateExplanation:
    """Why a conversation gets the template it gets: its last scored messages (time, role,
    score; never the content), their mean as the rules round it, and the choice per trigger
    type, all computed by the functions scheduling uses."""

    conversation_id: str
    conversation_found: bool
    messages: list[conversations.ScoredMessage]
    mean: float | None
    band: str
    templates: dict[str, TemplateInfo]  # trigger type -> the template it would get

    def to_json(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "conversation_found": self.conversation_found,
            "window": conversations.EMOTION_WINDOW,
            "messages": [{"created_at": iso(m.created_at), "role": m.role,
                          "emotion_score": m.emotion_score} for m in self.messages],
            "mean": self.mean,
            "band": self.band,
            "templates": {kind: {"id": t.id, "source": t.source}
                          for kind, t in self.templates.items()},
        }


def explain_templates(ctx: Context, conversation_id: str) -> TemplateExplanation:
    """The guide's "wrong template selected" check, without SQL."""
    conversation_id = require_id("conversation_id", conversation_id)
    with ctx.db.transaction(readonly=True) as conn:
        messages = conversations.recent_scored_messages(conn, conversation_id)
        found = conversations.conversation_exists(conn, conversation_id)
    mean = emotion_mean([m.emotion_score for m in messages])
    chosen = {kind: TemplateInfo.of(ctx.templates.get(choose_template(kind, mean)))
              for kind in TRIGGER_TYPES}
    return TemplateExplanation(conversation_id, found, messages, mean, emotion_band(mean),
                               chosen)

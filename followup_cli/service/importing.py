"""`schedule import`: many follow-ups from JSON Lines or CSV, all or nothing.

Every row is validated first, by the very functions the single `schedule` commands use, and
a bad row names its line. Then, in one transaction under the exclusive scheduling lock, the
rules are applied with a handful of batched queries (no query per row or per user): the
±1-day duplicate window and the one-re-engagement-per-period rule (inside the file and
against the database) and the per-user cap, which refuses the whole file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from followup_cli.db.schema import POST_EVENT, REENGAGEMENT
from followup_cli.errors import InputError, RuleViolation
from followup_cli.service.context import Context
from followup_cli.service.requests import (
    PostEventRequest,
    ReengagementRequest,
    post_event_request,
    reengagement_request,
)
from followup_cli.service.scheduling import (
    days_inactive,
    render_post_event,
    render_reengagement,
)
from followup_cli.store import conversations, followups, locks, scanning
from followup_cli.templates import TemplateSet

log = logging.getLogger("followup.import")

FORMATS = ("jsonl", "csv")
FIELDS = ("type", "user_id", "conversation_id", "event_date", "booking_id",
          "custom_message", "days_inactive", "at", "delay_hours", "template")
POST_ONLY = ("event_date", "booking_id", "custom_message", "delay_hours")
REENGAGEMENT_ONLY = ("days_inactive", "at")
INSERT_BATCH = 5000
DUPLICATE_WINDOW = followups.DUPLICATE_WINDOW

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImportRow:
    line: int
    request: PostEventRequest | ReengagementRequest


@dataclass
class Duplicate:
    line: int
    user_id: str
    trigger_type: str
    existing_id: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "user_id": self.user_id,
                "trigger_type": self.trigger_type, "existing_id": self.existing_id}


@dataclass
class ImportResult:
    source: str
    format: str
    rows: int = 0
    scheduled: int = 0
    scheduled_post_event: int = 0
    scheduled_reengagement: int = 0
    duplicates: list[Duplicate] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "format": self.format, "rows": self.rows,
            "scheduled": self.scheduled,
            "scheduled_by_type": {POST_EVENT: self.scheduled_post_event,
                                  REENGAGEMENT: self.scheduled_reengagement},
            "duplicates": len(self.duplicates),
            "duplicate_rows": [d.to_json() for d in self.duplicates],
        }


# --- reading ----------------------------------------------------------------------------

def open_source(path: str) -> tuple[TextIO, str]:
    """The file to read (`-` is stdin) and how to name it in messages."""
    if path == "-":
        return sys.stdin, "<stdin>"
    try:
        return open(Path(path).expanduser(), encoding="utf-8-sig", newline=""), path
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def detect_format(name: str, explicit: str | None, first_line: str) -> str:
    """--format wins; then the extension; then a line starting with `{` means JSON Lines."""
    if explicit:
        fmt = explicit.lower()
        if fmt == "json":
            fmt = "jsonl"
        if fmt not in FORMATS:
            raise InputError(f"--format: {explicit!r} is not jsonl or csv")
        return fmt
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    return "jsonl" if first_line.lstrip().startswith("{") else "csv"


def _peek(stream: TextIO) -> tuple[str, Iterator[str]]:
    """The first non-blank line, without losing it (stdin cannot seek)."""
    consumed: list[str] = []
    first = ""
    for raw in stream:
        consumed.append(raw)
        if raw.strip():
            first = raw
            break

    def chain() -> Iterator[str]:
        yield from consumed
        yield from stream

    return first, chain()


def text_value(line: int, name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputError(f"line {line}: {name}: expected a string, got {json.dumps(value)}")
    return str(value)


def jsonl_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise InputError(f"line {number}: expected a JSON object")
        yield number, value


def csv_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(lines)
    header = reader.fieldnames or []
    unknown = [h for h in header if h not in FIELDS]
    if unknown:
        raise InputError(f"line 1: unknown column {unknown[0]!r} (known: {', '.join(FIELDS)})")
    try:
        for record in reader:
            if None in record:
                raise InputError(f"line {reader.line_num}: more cells than header columns")
            if not any((v or "").strip() for v in record.values()):
                continue
            yield reader.line_num, {k: (v if v != "" else None) for k, v in record.items()}
    except csv.Error as exc:
        raise InputError(f"line {reader.line_num}: {exc}") from None


def parse_record(line: int, record: dict[str, Any], zone: ZoneInfo) -> ImportRow:
    """One row, validated exactly like the command line; errors name the line."""
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        raise InputError(f"line {line}: unknown field {unknown[0]!r} "
                         f"(known: {', '.join(FIELDS)})")
    values = {k: text_value(line, k, v) for k, v in record.items()}
    kind = (values.get("type") or "").strip()
    if kind not in (POST_EVENT, REENGAGEMENT):
        raise InputError(f"line {line}: type: {kind or 'missing'!r} is not post_event or "
                         "reengagement")
    foreign = REENGAGEMENT_ONLY if kind == POST_EVENT else POST_ONLY
    for name in foreign:
        if values.get(name) not in (None, ""):
            raise InputError(f"line {line}: {name}: not a field of a {kind} row")
    try:
        request: PostEventRequest | ReengagementRequest
        if kind == POST_EVENT:
            request = post_event_request(
                zone, user_id=values.get("user_id"),
                conversation_id=values.get("conversation_id"),
                event_date=values.get("event_date"), booking_id=values.get("booking_id"),
                custom_message=values.get("custom_message"),
                delay_hours=values.get("delay_hours"), template_id=values.get("template"))
        else:
            request = reengagement_request(
                zone, user_id=values.get("user_id"),
                conversation_id=values.get("conversation_id"),
                days_inactive=values.get("days_inactive"), at=values.get("at"),
                template_id=values.get("template"))
    except InputError as exc:
        raise InputError(f"line {line}: {exc}") from None
    return ImportRow(line, request)


def read_rows(stream: TextIO, name: str, fmt: str | None, zone: ZoneInfo
              ) -> tuple[str, list[ImportRow]]:
    try:
        first, lines = _peek(stream)
        chosen = detect_format(name, fmt, first)
        records = jsonl_records(lines) if chosen == "jsonl" else csv_records(lines)
        return chosen, [parse_record(n, rec, zone) for n, rec in records]
    except UnicodeDecodeError:
        raise InputError(f"{name}: not UTF-8 text") from None


# --- applying the rules ----------------------------------------------------------------

def import_schedule(ctx: Context, path: str, *, fmt: str | None = None,
                    progress: Progress | None = None) -> ImportResult:
    """Validate every row of the file, then schedule them all in one transaction, or none."""
    stream, name = open_source(path)
    try:
        chosen, rows = read_rows(stream, name, fmt, ctx.settings.timezone)
    finally:
        if stream is not sys.stdin:
            stream.close()
    return import_rows(ctx, rows, source=name, fmt=chosen, progress=progress)


def import_rows(ctx: Context, rows: list[ImportRow], *, source: str = "<rows>",
                fmt: str = "jsonl", progress: Progress | None = None) -> ImportResult:
    """Render every row (template, message) first, without the lock; then, under the
    exclusive scheduling lock, apply the duplicate, period and cap rules and insert."""
    result = ImportResult(source=source, format=fmt, rows=len(rows))
    templates = ctx.templates
    now = ctx.now()
    with ctx.db.transaction(readonly=True) as conn:
        facts = _Facts(conn, rows)
    drafts: list[dict[str, Any]] = []
    for row in rows:
        try:
            drafts.append(facts.render(ctx, templates, row, now))
        except InputError as exc:
            raise InputError(f"line {row.line}: {exc}") from None
    with ctx.db.transaction() as conn:
        locks.lock_all_scheduling(conn)
        rules = _Rules(ctx, conn, rows)
        inserts = [draft for row, draft in zip(rows, drafts, strict=True)
                   if rules.accept(row, draft, result)]
        for start in range(0, len(inserts), INSERT_BATCH):
            scanning.insert_followups_bulk(conn, inserts[start:start + INSERT_BATCH])
            if progress is not None:
                progress(min(start + INSERT_BATCH, len(inserts)), len(inserts))
    result.scheduled = len(inserts)
    log.info("import of %s: %d rows, %d scheduled, %d duplicates", source, result.rows,
             result.scheduled, len(result.duplicates))
    return result


class _Facts:
    """What rendering needs, read once for the whole file: the conversation memory (emotion
    scores, users' last activity and most recent conversation). No rule depends on it."""

    def __init__(self, conn: sa.Connection, rows: list[ImportRow]):
        re_rows = [r.request for r in rows if isinstance(r.request, ReengagementRequest)]
        self.last_activity = scanning.last_activity_many(conn, [r.user_id for r in re_rows])
        need_conv = sorted({r.user_id for r in re_rows if r.conversation_id is None})
        self.latest = scanning.newest_created_conversation_many(conn, need_conv)
        self.latest.update(scanning.latest_conversation_many(conn, need_conv))
        conv_ids = {r.request.conversation_id for r in rows
                    if isinstance(r.request, PostEventRequest)}
        conv_ids |= {r.conversation_id or self.latest.get(r.user_id, "") for r in re_rows}
        conv_ids.discard("")
        self.scores = conversations.recent_scores_many(conn, conv_ids)

    def render(self, ctx: Context, templates: TemplateSet, row: ImportRow, now: datetime
               ) -> dict[str, Any]:
        req = row.request
        if isinstance(req, PostEventRequest):
            return render_post_event(ctx, templates, req,
                                     self.scores.get(req.conversation_id, []), now).row
        conversation_id = req.conversation_id or self.latest.get(req.user_id, "")
        days = days_inactive(ctx, req.days_inactive, self.last_activity.get(req.user_id), now)
        return render_reengagement(
            templates, user_id=req.user_id, conversation_id=conversation_id,
            days_inactive=days, at=req.at or now, template_id=req.template_id,
            scores=self.scores.get(conversation_id, []), now=now).row


class _Rules:
    """The rules' database facts, read under the lock once for every user of the file,
    then updated in memory as rows are accepted."""

    def __init__(self, ctx: Context, conn: sa.Connection, rows: list[ImportRow]):
        self.cap = ctx.settings.max_pending_per_user
        users = sorted({r.request.user_id for r in rows})
        post_users = sorted({r.request.user_id for r in rows
                             if isinstance(r.request, PostEventRequest)})
        re_users = sorted({r.request.user_id for r in rows
                           if isinstance(r.request, ReengagementRequest)})
        self.live = followups.count_live_many(conn, users)
        self.posts: dict[str, list[tuple[str, datetime]]] = {}
        for user_id, fid, event_at in followups.live_post_events(conn, post_users):
            self.posts.setdefault(user_id, []).append((fid, event_at))
        last_activity = scanning.last_activity_many(conn, re_users)
        self.closed = scanning.reengaged_since_many(conn, re_users, last_activity)

    def _take_slot(self, row: ImportRow) -> None:
        user_id = row.request.user_id
        live = self.live.get(user_id, 0)
        if live >= self.cap:
            raise RuleViolation(
                f"line {row.line}: user {user_id!r} would have more than {self.cap} pending "
                "follow-ups (FOLLOWUP_MAX_PENDING_PER_USER); nothing of the file was written")
        self.live[user_id] = live + 1

    def accept(self, row: ImportRow, draft: dict[str, Any], result: ImportResult) -> bool:
        """Whether the row is scheduled; a duplicate is recorded, the cap refuses the file."""
        req = row.request
        if isinstance(req, PostEventRequest):
            for fid, event_at in self.posts.get(req.user_id, []):
                if abs(event_at - req.event_at) <= DUPLICATE_WINDOW:
                    result.duplicates.append(Duplicate(row.line, req.user_id, POST_EVENT, fid))
                    return False
            self._take_slot(row)
            self.posts.setdefault(req.user_id, []).append((draft["id"], req.event_at))
            result.scheduled_post_event += 1
            return True
        existing = self.closed.get(req.user_id)
        if existing is not None:
            result.duplicates.append(Duplicate(row.line, req.user_id, REENGAGEMENT, existing))
            return False
        self._take_slot(row)
        self.closed[req.user_id] = draft["id"]
        result.scheduled_reengagement += 1
        return True


def rows_from_text(text: str, zone: ZoneInfo, fmt: str = "jsonl") -> list[ImportRow]:
    """Parse rows from a string (tests and the demo)."""
    return read_rows(io.StringIO(text), f"<text>.{fmt}", fmt, zone)[1]

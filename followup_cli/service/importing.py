"""`schedule import`: many follow-ups from JSON Lines or CSV, all or nothing.

The file is read as a stream, in chunks: each row is validated by the very functions the
single `schedule` commands use (a bad row names its line), rendered, and staged, so memory
is bounded by the chunk, not the file. Then the one admission path applies the rules to the
whole file inside the same transaction: duplicates (inside the file and against the
database) are skipped and reported, and a row over the per-user cap refuses the file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from followup_cli.db.schema import POST_EVENT, REENGAGEMENT
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.errors import InputError, RuleViolation
from followup_cli.service.admission import ADMITTED, AT_CAP, DUPLICATE, Admission, chunked
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
from followup_cli.store import conversations, scanning
from followup_cli.templates import TemplateSet

log = logging.getLogger("followup.import")

FORMATS = ("jsonl", "csv")
FIELDS = ("type", "user_id", "conversation_id", "event_date", "booking_id",
          "custom_message", "days_inactive", "at", "delay_hours", "template")
KNOWN_FIELDS = frozenset(FIELDS)
POST_ONLY = ("event_date", "booking_id", "custom_message", "delay_hours")
REENGAGEMENT_ONLY = ("days_inactive", "at")
CHUNK = 5000  # rows validated, rendered and staged at a time: what bounds the memory
DUPLICATES_SHOWN = 100  # duplicates listed in a result; the count is always exact
ANALYZE_AFTER = 10_000  # scheduled rows after which the table gets fresh statistics

Progress = Callable[[int, int | None], None]


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
    duplicates_total: int = 0
    duplicates: list[Duplicate] = field(default_factory=list)  # the first DUPLICATES_SHOWN

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "format": self.format, "rows": self.rows,
            "scheduled": self.scheduled,
            "scheduled_by_type": {POST_EVENT: self.scheduled_post_event,
                                  REENGAGEMENT: self.scheduled_reengagement},
            "duplicates": self.duplicates_total,
            # bounded: a file of 20,000 duplicates must not make a 3 MB document
            "duplicate_rows": [d.to_json() for d in self.duplicates],
            "duplicate_rows_truncated": self.duplicates_total > len(self.duplicates),
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
            raise InputError(f"format: {explicit!r} is not jsonl or csv")
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
    if type(value) is str or value is None:  # nearly every value: one check
        return value
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
    if not KNOWN_FIELDS.issuperset(record):
        unknown = sorted(set(record) - KNOWN_FIELDS)
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


def iter_rows(stream: TextIO, name: str, fmt: str | None, zone: ZoneInfo
              ) -> tuple[str, Iterator[ImportRow]]:
    """The file's format and its rows, validated one by one as they are read."""
    try:
        first, lines = _peek(stream)
    except UnicodeDecodeError:
        raise InputError(f"{name}: not UTF-8 text") from None
    chosen = detect_format(name, fmt, first)

    def rows() -> Iterator[ImportRow]:
        try:
            records = jsonl_records(lines) if chosen == "jsonl" else csv_records(lines)
            for number, record in records:
                yield parse_record(number, record, zone)
        except UnicodeDecodeError:
            raise InputError(f"{name}: not UTF-8 text") from None

    return chosen, rows()


# --- applying the rules ----------------------------------------------------------------

def import_schedule(ctx: Context, path: str, *, fmt: str | None = None,
                    progress: Progress | None = None) -> ImportResult:
    """Validate, render and stage the file in chunks, then admit it all in one transaction,
    or nothing. `progress(done, total)` counts bytes of a file, rows of stdin (total None)."""
    stream, name = open_source(path)
    try:
        chosen, rows = iter_rows(stream, name, fmt, ctx.settings.timezone)
        read = _bytes_read(stream)
        total = None if read is None else _size(stream)

        def report(done_rows: int, whole: int | None = total) -> None:
            if progress is not None:
                progress(done_rows if read is None else read(), whole)

        def deciding(done_rows: int) -> None:
            # The file is read; the rules and the insert take about as long again. A bar
            # left full would look hung: pulse it (total unknown) until the work ends.
            report(done_rows, None)

        return import_rows(ctx, rows, source=name, fmt=chosen, progress=report,
                           deciding=deciding)
    finally:
        if stream is not sys.stdin:
            stream.close()


def _bytes_read(stream: TextIO) -> Callable[[], int] | None:
    raw = getattr(getattr(stream, "buffer", None), "raw", None)
    if stream is sys.stdin or raw is None or not hasattr(raw, "tell"):
        return None
    return lambda: int(raw.tell())


def _size(stream: TextIO) -> int | None:
    try:
        return os.fstat(stream.fileno()).st_size
    except (OSError, ValueError):
        return None


def import_rows(ctx: Context, rows: Iterable[ImportRow], *, source: str = "<rows>",
                fmt: str = "jsonl", progress: Callable[[int], None] | None = None,
                deciding: Callable[[int], None] | None = None) -> ImportResult:
    """Render and stage `rows` chunk by chunk, then admit them all (one transaction).
    `progress(rows)` after each staged chunk; `deciding(rows)` once every row is staged."""
    result = ImportResult(source=source, format=fmt)
    templates = ctx.templates
    now = ctx.now()
    cap = ctx.settings.max_pending_per_user
    with ctx.db.transaction() as conn:
        admission = Admission(conn, cap=cap, seal=ctx.seal)
        for chunk in chunked(rows, CHUNK):
            facts = _Facts(conn, chunk)
            admission.add(facts.staged(ctx, templates, chunk, now))
            result.rows += len(chunk)
            if progress is not None:
                progress(result.rows)
        if deciding is not None:
            deciding(result.rows)
        summary = admission.admit(stop_at_cap=True)
        if summary.count(AT_CAP):
            first = admission.decided(AT_CAP, 1)[0]
            raise RuleViolation(
                f"line {first['seq']}: the user would have more than {cap} pending "
                "follow-ups (FOLLOWUP_MAX_PENDING_PER_USER); nothing of the file was written")
        result.scheduled_post_event = summary.count(ADMITTED, POST_EVENT)
        result.scheduled_reengagement = summary.count(ADMITTED, REENGAGEMENT)
        result.duplicates_total = summary.count(DUPLICATE)
        result.duplicates = [
            Duplicate(d["seq"], d["user_id"], d["trigger_type"], d["existing_id"])
            for d in admission.decided(DUPLICATE, DUPLICATES_SHOWN)]
    result.scheduled = result.scheduled_post_event + result.scheduled_reengagement
    if result.scheduled >= ANALYZE_AFTER:
        # Fresh statistics for the next claim's plan (autovacuum may be off).
        ctx.db.analyze(sf.name)
    log.info("import of %s: %d rows, %d scheduled, %d duplicates", source, result.rows,
             result.scheduled, result.duplicates_total)
    return result


class _Facts:
    """What rendering a chunk needs from the conversation memory, read in a few batched
    queries: emotion scores, users' last activity and most recent conversation. No rule
    depends on it (the admission path reads what the rules need itself)."""

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

    def staged(self, ctx: Context, templates: TemplateSet, rows: list[ImportRow],
               now: datetime) -> Iterator[dict[str, Any]]:
        """The chunk's rows rendered for the stage, one at a time as the stage takes them."""
        for row in rows:
            try:
                draft = self.render(ctx, templates, row, now)
            except InputError as exc:
                raise InputError(f"line {row.line}: {exc}") from None
            yield {**draft, "seq": row.line}

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


def rows_from_text(text: str, zone: ZoneInfo, fmt: str = "jsonl") -> list[ImportRow]:
    """Parse rows from a string (tests and the demo)."""
    return list(iter_rows(io.StringIO(text), f"<text>.{fmt}", fmt, zone)[1])

"""`conversations import`: load conversation history (backfills, trials) from JSON Lines.

One message per line:

    {"conversation_id": "c1", "user_id": "u1", "role": "user", "content": "Hi!",
     "emotion_score": 0.82, "created_at": "2026-10-01T18:00:00Z"}

optionally with "message_id" and "title" (of the conversation). Conversations are created as
needed (created_at = their first imported message). Without a message_id, the id is derived
from the message itself, so importing the same file twice adds nothing the second time.
All rows are validated first; a bad row names its line and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from followup_cli.errors import InputError
from followup_cli.service.context import Context
from followup_cli.service.importing import jsonl_records, open_source, text_value
from followup_cli.service.requests import require_id
from followup_cli.store import history
from followup_cli.timeutil import parse_instant

log = logging.getLogger("followup.history")

FIELDS = ("conversation_id", "user_id", "role", "content", "emotion_score", "created_at",
          "message_id", "title")
ROLES = ("user", "assistant", "system")
MAX_CONTENT = 100_000
INSERT_BATCH = 1000  # messages per INSERT: progress can be reported between them
# (done, total): lines read while the total is unknown (None), then messages written.
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class MessageRow:
    line: int
    id: str
    conversation_id: str
    user_id: str
    role: str
    content: str
    emotion_score: float | None
    created_at: datetime
    title: str | None


@dataclass
class HistoryResult:
    source: str
    lines: int = 0
    conversations_created: int = 0
    messages_imported: int = 0
    messages_skipped: int = 0  # already in the database or repeated in the file

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "lines": self.lines,
                "conversations_created": self.conversations_created,
                "messages_imported": self.messages_imported,
                "messages_skipped": self.messages_skipped}


def _score(line: int, value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InputError(f"line {line}: emotion_score: expected a number from 0 to 1")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise InputError(f"line {line}: emotion_score: {value!r} is not a number") from None
    if not math.isfinite(score) or not 0 <= score <= 1:
        raise InputError(f"line {line}: emotion_score: {value!r} is not between 0 and 1")
    return score


def parse_message(line: int, record: dict[str, Any], ctx: Context) -> MessageRow:
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        raise InputError(f"line {line}: unknown field {unknown[0]!r} "
                         f"(known: {', '.join(FIELDS)})")
    text = {k: text_value(line, k, v) for k, v in record.items() if k != "emotion_score"}
    try:
        conversation_id = require_id("conversation_id", text.get("conversation_id"))
        user_id = require_id("user_id", text.get("user_id"))
        role = text.get("role") or ""
        if role not in ROLES:
            raise InputError(f"role: {role or 'missing'!r} is not one of {', '.join(ROLES)}")
        content = text.get("content") or ""
        if len(content) > MAX_CONTENT or "\x00" in content:
            raise InputError(f"content: longer than {MAX_CONTENT} characters or has a NUL")
        raw_time = text.get("created_at")
        if raw_time is None:
            raise InputError("created_at: required (ISO 8601)")
        created_at = parse_instant(raw_time, ctx.settings.timezone, name="created_at")
        message_id = text.get("message_id")
        if message_id is not None:
            require_id("message_id", message_id)
    except InputError as exc:
        raise InputError(f"line {line}: {exc}") from None
    score = _score(line, record.get("emotion_score"))
    if message_id is None:
        digest = hashlib.sha256(json.dumps(
            [conversation_id, user_id, role, content, created_at.isoformat()],
            ensure_ascii=False).encode()).hexdigest()[:32]
        message_id = f"imp-{digest}"
    return MessageRow(line, message_id, conversation_id, user_id, role, content, score,
                      created_at, text.get("title"))


def parse_messages(lines: Iterable[str], ctx: Context, progress: Progress | None = None
                   ) -> list[MessageRow]:
    rows = []
    for n, rec in jsonl_records(lines):
        rows.append(parse_message(n, rec, ctx))
        if progress is not None and len(rows) % INSERT_BATCH == 0:
            progress(len(rows), None)
    return rows


def import_history(ctx: Context, path: str, *, progress: Progress | None = None
                   ) -> HistoryResult:
    """Validate every line, then write all conversations and messages in one transaction.
    `progress(done, total)` hears of the lines read (total None), then of the writes."""
    stream, name = open_source(path)
    try:
        rows = parse_messages(stream, ctx, progress)
    except UnicodeDecodeError:
        raise InputError(f"{name}: not UTF-8 text") from None
    finally:
        if stream is not sys.stdin:
            stream.close()
    return import_messages(ctx, rows, source=name, progress=progress)


def import_messages(ctx: Context, rows: list[MessageRow], *, source: str = "<rows>",
                    progress: Progress | None = None) -> HistoryResult:
    result = HistoryResult(source=source, lines=len(rows))
    owners_in_file: dict[str, MessageRow] = {}
    for row in rows:
        first = owners_in_file.setdefault(row.conversation_id, row)
        if first.user_id != row.user_id:
            raise InputError(
                f"line {row.line}: conversation {row.conversation_id!r} belongs to user "
                f"{first.user_id!r} (line {first.line}), not {row.user_id!r}")
    with ctx.db.transaction() as conn:
        owners = history.conversation_owners(conn, list(owners_in_file))
        for cid, first in owners_in_file.items():
            if cid in owners and owners[cid] != first.user_id:
                raise InputError(
                    f"line {first.line}: conversation {cid!r} already belongs to another "
                    "user in the database")
        existing = history.existing_message_ids(conn, [r.id for r in rows])
        new_conversations: dict[str, dict[str, Any]] = {}
        messages: list[dict[str, Any]] = []
        seen: set[str] = set()
        for row in rows:
            if row.id in existing or row.id in seen:
                result.messages_skipped += 1
                continue
            seen.add(row.id)
            if row.conversation_id not in owners:
                conv = new_conversations.setdefault(row.conversation_id, {
                    "id": row.conversation_id, "user_id": row.user_id,
                    "created_at": row.created_at, "updated_at": row.created_at,
                    "title": row.title})
                conv["created_at"] = min(conv["created_at"], row.created_at)
                conv["updated_at"] = max(conv["updated_at"], row.created_at)
                conv["title"] = conv["title"] or row.title
            messages.append({
                "id": row.id, "conversation_id": row.conversation_id,
                "user_id": row.user_id, "role": row.role, "content": row.content,
                "emotion_score": row.emotion_score, "created_at": row.created_at})
        history.insert_conversations(conn, list(new_conversations.values()))
        for start in range(0, len(messages), INSERT_BATCH):
            history.insert_messages(conn, messages[start:start + INSERT_BATCH])
            if progress is not None:
                progress(min(start + INSERT_BATCH, len(messages)), len(messages))
    result.conversations_created = len(new_conversations)
    result.messages_imported = len(messages)
    log.info("history import of %s: %d conversations, %d messages, %d skipped", source,
             result.conversations_created, result.messages_imported, result.messages_skipped)
    return result

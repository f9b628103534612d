"""Bulk writes to the conversation memory (history import) and removal of the demo's rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from followup_cli.db import rules
from followup_cli.db.schema import ai_conversations as conv
from followup_cli.db.schema import ai_messages as msg
from followup_cli.db.schema import scheduled_followups as sf

CHUNK = 5000


def conversation_owners(conn: sa.Connection, ids: Sequence[str]) -> dict[str, str]:
    """conversation id → user id, for those of `ids` that exist."""
    query = sa.select(conv.c.id, conv.c.user_id).where(
        conv.c.id.in_(sa.bindparam("ids", expanding=True)))
    out: dict[str, str] = {}
    unique = sorted(set(ids))
    for start in range(0, len(unique), CHUNK):
        out.update({r[0]: r[1] for r in conn.execute(
            query, {"ids": unique[start:start + CHUNK]})})
    return out


def existing_message_ids(conn: sa.Connection, ids: Sequence[str]) -> set[str]:
    query = sa.select(msg.c.id).where(msg.c.id.in_(sa.bindparam("ids", expanding=True)))
    out: set[str] = set()
    unique = sorted(set(ids))
    for start in range(0, len(unique), CHUNK):
        out.update(r[0] for r in conn.execute(query, {"ids": unique[start:start + CHUNK]}))
    return out


def insert_conversations(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        conn.execute(sa.insert(conv), list(rows[start:start + CHUNK]))


def insert_messages(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        conn.execute(sa.insert(msg), list(rows[start:start + CHUNK]))


def delete_users_with_prefix(conn: sa.Connection, prefix: str) -> int:
    """Delete every follow-up, message and conversation of users whose id starts with
    `prefix` (the demo's namespace). Returns the number of rows deleted."""
    total = 0
    for table in (sf, msg, conv):
        result = conn.execute(sa.delete(table).where(rules.starts_with(table.c.user_id, prefix)))
        total += int(result.rowcount or 0)
    return total


def count_other_due(conn: sa.Connection, prefix: str, now: Any) -> int:
    """Pending follow-ups due now that do not belong to users with `prefix`."""
    return int(conn.execute(
        sa.select(sa.func.count()).select_from(sf).where(
            rules.is_live(sf), sf.c.next_attempt_at <= now,
            ~rules.starts_with(sf.c.user_id, prefix))
    ).scalar_one())

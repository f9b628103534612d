"""Set-based queries on user activity: the scan-inactive candidate query, and facts about
many users at once for rendering (last activity, most recent conversation).

The rules (activity, the inactivity period) come from db/rules.py, like everywhere else.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from followup_cli.db import rules
from followup_cli.db.schema import ai_conversations as conv
from followup_cli.db.schema import ai_messages as msg
from followup_cli.db.schema import scheduled_followups as sf

CHUNK = 5000  # ids per expanding IN (SQLite's variable limit is 32,766)
STREAM_ROWS = 5000  # candidates fetched per round trip from the server-side cursor


@dataclass(frozen=True)
class Candidate:
    user_id: str
    last_activity: datetime
    conversation_id: str  # the conversation of the user's newest own message


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start:start + CHUNK])


def candidates_query(cutoff: datetime, user_ids: Sequence[str] | None = None
                     ) -> sa.Select[Any]:
    """Every user whose last activity is at or before `cutoff` and whose current inactivity
    period has no re-engagement yet, longest inactive first: (user_id, last activity, most
    recent conversation).

    Only the activity index is read: one ordered pass for every user's last activity, then
    one descent per candidate for the conversation (db/rules.py `conversation_at`), never
    the other messages."""
    last_at = sa.func.max(msg.c.created_at)  # max() keeps UTCDateTime's conversion
    last = (sa.select(msg.c.user_id, last_at.label("last_at"))
            .where(rules.is_activity(msg)).group_by(msg.c.user_id).having(last_at <= cutoff))
    if user_ids is not None:
        last = last.where(msg.c.user_id.in_(list(user_ids)))
    last_cte = last.cte("last_activity")
    return (sa.select(last_cte.c.user_id, last_cte.c.last_at,
                      rules.conversation_at(msg, last_cte.c.user_id, last_cte.c.last_at))
            .where(~sa.exists().where(
                rules.closes_period(sf, last_cte.c.user_id, last_cte.c.last_at)))
            .order_by(last_cte.c.last_at, last_cte.c.user_id))


def inactive_candidates(conn: sa.Connection, cutoff: datetime,
                        user_ids: Sequence[str] | None = None) -> Iterator[Candidate]:
    """The candidates (`candidates_query`) as a stream: run now, read from a server-side
    cursor on PostgreSQL, so memory does not grow with the number of users."""
    if conn.dialect.name == "postgresql":
        # JIT compiling this one-off aggregate costs more (0.8 s at a million users) than
        # it saves; the setting ends with the scan's read transaction.
        conn.exec_driver_sql("SET LOCAL jit = off")
    rows = (conn.execution_options(stream_results=True, yield_per=STREAM_ROWS)
            .execute(candidates_query(cutoff, user_ids)))
    return (Candidate(r[0], r[1], r[2]) for r in rows)


# --- facts about many users at once (schedule import) --------------------------------

def last_activity_many(conn: sa.Connection, user_ids: Sequence[str]) -> dict[str, datetime]:
    last_at = sa.func.max(msg.c.created_at)
    query = (sa.select(msg.c.user_id, last_at)
             .where(rules.is_activity(msg),
                    msg.c.user_id.in_(sa.bindparam("users", expanding=True)))
             .group_by(msg.c.user_id))
    out: dict[str, datetime] = {}
    for chunk in _chunks(sorted(set(user_ids))):
        out.update({r[0]: r[1] for r in conn.execute(query, {"users": chunk})})
    return out


def _first_per_user(conn: sa.Connection, table: sa.Table, value: sa.Column[Any],
                    user_ids: Sequence[str], *where: sa.ColumnElement[bool]
                    ) -> dict[str, str]:
    """user → `value` of the user's newest row of `table` (by created_at, then id) among
    the rows matching `where`, for many users: one window-function query per chunk of ids."""
    ranked = sa.select(
        table.c.user_id, value,
        sa.func.row_number().over(
            partition_by=table.c.user_id,
            order_by=(table.c.created_at.desc(), table.c.id.desc())).label("rn"),
    ).where(table.c.user_id.in_(sa.bindparam("users", expanding=True)), *where).subquery()
    query = sa.select(ranked.c.user_id, ranked.c[value.name]).where(ranked.c.rn == 1)
    out: dict[str, str] = {}
    for chunk in _chunks(sorted(set(user_ids))):
        out.update({r[0]: r[1] for r in conn.execute(query, {"users": chunk})})
    return out


def latest_conversation_many(conn: sa.Connection, user_ids: Sequence[str]) -> dict[str, str]:
    """Each user's most recent conversation: the one with the newest message they sent
    (users who never wrote are absent; the caller falls back to the newest created
    conversation if it wants one)."""
    return _first_per_user(conn, msg, msg.c.conversation_id, user_ids, rules.is_activity(msg))


def newest_created_conversation_many(conn: sa.Connection, user_ids: Sequence[str]
                                     ) -> dict[str, str]:
    """Each user's newest created conversation: the fallback for users with no message."""
    return _first_per_user(conn, conv, conv.c.id, user_ids)

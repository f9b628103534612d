"""Queries on the conversation memory (ai_conversations, ai_messages) that the chat
application writes.

What a single booking reads runs by name (store/statements.py) on either kind of
connection; the bulk reads and the inserts (scan, demo, tests) are SQLAlchemy Core and
import it when called."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from followup_cli.db.states import EMOTION_WINDOW as EMOTION_WINDOW
from followup_cli.store.executor import as_utc, of
from followup_cli.timeutil import utc_stamp

if TYPE_CHECKING:
    import sqlalchemy as sa



@dataclass(frozen=True)
class ScoredMessage:
    """What template choice sees of a message: never its content."""

    created_at: datetime
    role: str
    emotion_score: float


def recent_scored_messages(conn: Any, conversation_id: str) -> list[ScoredMessage]:
    """The newest EMOTION_WINDOW messages of one conversation that carry an emotion score,
    newest first."""
    rows = of(conn).run("conversations.recent_scored", conversation_id=conversation_id).rows
    return [ScoredMessage(utc_stamp(r[0]), str(r[1]), float(r[2])) for r in rows]


def recent_scores(conn: Any, conversation_id: str) -> list[float]:
    """The newest EMOTION_WINDOW emotion scores of one conversation."""
    return [m.emotion_score for m in recent_scored_messages(conn, conversation_id)]


def conversation_exists(conn: Any, conversation_id: str) -> bool:
    return of(conn).run("conversations.exists",
                        conversation_id=conversation_id).first() is not None


def latest_conversation(conn: Any, user_id: str) -> str | None:
    """The user's most recent conversation: the one with the newest message they sent, else
    the newest created."""
    sql = of(conn)
    newest_msg = sql.run("conversations.latest_by_message", user_id=user_id).scalar()
    if newest_msg is not None:
        return str(newest_msg)
    newest = sql.run("conversations.latest_created", user_id=user_id).scalar()
    return None if newest is None else str(newest)


def last_activity(conn: Any, user_id: str) -> datetime | None:
    """When the user last sent a message (role = 'user')."""
    return as_utc(of(conn).run("conversations.last_activity", user_id=user_id).scalar())


def recent_scores_many_query(dialect: str) -> sa.Select[Any]:
    """recent_scores_many's statement: (conversation id, score) rows, newest first within
    each conversation, for the conversations bound to `ids`.

    PostgreSQL: a LATERAL join reads each conversation's newest scores from
    ix_ai_messages_conversation_recent, backwards, and stops at the fifth: no sort, and no
    heap once the table is vacuumed (a window over all of a conversation's messages cost
    about four times as much). SQLite has no LATERAL: one window function over the
    conversations' scored messages."""
    import sqlalchemy as sa

    from followup_cli.db.schema import ai_messages as msg
    from followup_cli.store.statements import newest_scores

    if dialect == "postgresql":
        given = sa.func.unnest(sa.bindparam("ids", type_=sa.ARRAY(sa.String))
                               ).table_valued("cid").render_derived()
        newest = newest_scores(given.c.cid).lateral("newest")
        return sa.select(given.c.cid, newest.c.emotion_score).select_from(
            given.join(newest, sa.true()))
    ranked = sa.select(
        msg.c.conversation_id, msg.c.emotion_score,
        sa.func.row_number().over(
            partition_by=msg.c.conversation_id,
            order_by=(msg.c.created_at.desc(), msg.c.id.desc())).label("rn"),
    ).where(msg.c.conversation_id.in_(sa.bindparam("ids", expanding=True)),
            msg.c.emotion_score.is_not(None)).subquery()
    return (sa.select(ranked.c.conversation_id, ranked.c.emotion_score)
            .where(ranked.c.rn <= EMOTION_WINDOW)
            .order_by(ranked.c.conversation_id, ranked.c.rn))


def recent_scores_many(conn: sa.Connection, conversation_ids: Iterable[str]
                       ) -> dict[str, list[float]]:
    """recent_scores for many conversations, newest first, one query per 5,000."""
    ids = sorted(set(conversation_ids))
    query = recent_scores_many_query(conn.dialect.name)
    out: dict[str, list[float]] = {}
    for start in range(0, len(ids), 5000):
        for row in conn.execute(query, {"ids": ids[start:start + 5000]}):
            out.setdefault(row[0], []).append(float(row[1]))
    return out


def insert_conversations(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    import sqlalchemy as sa

    from followup_cli.db.schema import ai_conversations as conv

    if rows:
        conn.execute(sa.insert(conv), rows)


def insert_messages(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    import sqlalchemy as sa

    from followup_cli.db.schema import ai_messages as msg

    if rows:
        conn.execute(sa.insert(msg), rows)

"""Writes behind `cleanup`, `retry` and `forget-user`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from followup_cli.db import rules
from followup_cli.db.schema import CANCELLED, EXECUTED, FAILED
from followup_cli.db.schema import ai_conversations as conv
from followup_cli.db.schema import ai_messages as msg
from followup_cli.db.schema import followup_runs as runs
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.store.statements import failed_at

log = logging.getLogger("followup.cleanup")

# --- retention --------------------------------------------------------------------------

RETENTION_KINDS = (EXECUTED, FAILED, CANCELLED)


def _expired(kind: str, cutoff: datetime) -> sa.ColumnElement[bool]:
    """Rows of one retention kind that are older than `cutoff`, each by the time it ended."""
    if kind == EXECUTED:
        return sa.and_(sf.c.status == EXECUTED, sf.c.executed_at < cutoff)
    if kind == FAILED:
        return sa.and_(sf.c.status == FAILED, failed_at() < cutoff)
    if kind == CANCELLED:
        return sa.and_(sf.c.status == CANCELLED,
                       sa.func.coalesce(sf.c.cancelled_at, sf.c.created_at) < cutoff)
    raise ValueError(kind)


def count_expired(conn: sa.Connection, kind: str, cutoff: datetime) -> int:
    return int(conn.execute(
        sa.select(sa.func.count()).select_from(sf).where(_expired(kind, cutoff))
    ).scalar_one())


def delete_expired_batch(conn: sa.Connection, kind: str, cutoff: datetime, batch: int) -> int:
    """Delete at most `batch` expired rows of one kind; returns how many went."""
    ids = sa.select(sf.c.id).where(_expired(kind, cutoff)).limit(batch)
    if conn.dialect.name == "postgresql":
        # Rows another session holds are left for the next run rather than waited for.
        ids = ids.with_for_update(skip_locked=True)
    chosen = [r[0] for r in conn.execute(ids)]
    if not chosen:
        return 0
    result = conn.execute(sa.delete(sf).where(
        sf.c.id.in_(sa.bindparam("ids", expanding=True)), _expired(kind, cutoff)),
        {"ids": chosen})
    return int(result.rowcount or 0)


def count_runs_finished_before(conn: sa.Connection, cutoff: datetime) -> int:
    return int(conn.execute(
        sa.select(sa.func.count()).select_from(runs).where(runs.c.finished_at < cutoff)
    ).scalar_one())


def delete_runs_batch(conn: sa.Connection, cutoff: datetime, batch: int) -> int:
    chosen = [r[0] for r in conn.execute(
        sa.select(runs.c.id).where(runs.c.finished_at < cutoff).limit(batch))]
    if not chosen:
        return 0
    result = conn.execute(sa.delete(runs).where(
        runs.c.id.in_(sa.bindparam("ids", expanding=True))), {"ids": chosen})
    return int(result.rowcount or 0)


# --- conversation retention ---------------------------------------------------------------

def _conversation_expired(cutoff: datetime) -> sa.ColumnElement[bool]:
    """The conversation's last message (or, with none, its creation) is before `cutoff`."""
    recent = sa.exists().where(msg.c.conversation_id == conv.c.id, msg.c.created_at >= cutoff)
    any_message = sa.exists().where(msg.c.conversation_id == conv.c.id)
    return sa.and_(~recent, sa.or_(any_message, conv.c.created_at < cutoff))


def _conversation_live() -> sa.ColumnElement[bool]:
    """A follow-up not yet delivered points at the conversation."""
    return sa.exists().where(sf.c.conversation_id == conv.c.id, rules.is_live(sf))


def count_expired_conversations(conn: sa.Connection, cutoff: datetime) -> dict[str, int]:
    """conversations and messages retention would delete, and expired conversations kept
    because a live follow-up points at them."""
    expired = _conversation_expired(cutoff)
    doomed = sa.select(conv.c.id).where(expired, ~_conversation_live())
    conversations, kept = conn.execute(sa.select(
        sa.func.count().filter(~_conversation_live()),
        sa.func.count().filter(_conversation_live()),
    ).select_from(conv).where(expired)).one()
    messages = conn.execute(sa.select(sa.func.count()).select_from(msg).where(
        msg.c.conversation_id.in_(doomed))).scalar_one()
    return {"conversations": int(conversations), "messages": int(messages),
            "kept_live": int(kept)}


def delete_expired_conversations_batch(conn: sa.Connection, cutoff: datetime, batch: int,
                                       after: str | None = None
                                       ) -> tuple[int, int, str | None]:
    """Delete at most `batch` expired conversations no live follow-up points at, the first
    ones by id after `after`; their messages go with them (ON DELETE CASCADE). Returns
    (conversations, messages) deleted and the last id looked at (None: no more).

    A conversation the chat application is writing a message into as the DELETE reaches
    it stays, with that message: see _delete_conversations."""
    expired = sa.and_(_conversation_expired(cutoff), ~_conversation_live())
    query = sa.select(conv.c.id).where(expired)
    if after is not None:
        query = query.where(conv.c.id > after)
    chosen = [r[0] for r in conn.execute(query.order_by(conv.c.id).limit(batch))]
    if not chosen:
        return 0, 0, None
    ids: sa.BindParameter[list[str]] = sa.bindparam("ids", expanding=True)
    per_conversation = {str(r[0]): int(r[1]) for r in conn.execute(
        sa.select(msg.c.conversation_id, sa.func.count())
        .where(msg.c.conversation_id.in_(ids)).group_by(msg.c.conversation_id),
        {"ids": chosen})}
    deleted = _delete_conversations(conn, chosen, expired, per_conversation)
    return len(deleted), sum(per_conversation.get(c, 0) for c in deleted), chosen[-1]


def _delete_conversations(conn: sa.Connection, chosen: list[str],
                          expired: sa.ColumnElement[bool], messages: dict[str, int]
                          ) -> list[str]:
    """DELETE the conversations of `chosen` that are still expired; on PostgreSQL, only if
    the cascade took exactly the messages counted beforehand.

    A message the chat application is inserting holds a lock on its conversation: the
    DELETE waits for it and then goes on without checking its rule again (the row itself
    did not change), and the cascade takes the new message too. Locking the rows first
    (SELECT ... FOR UPDATE) would need UPDATE on ai_conversations, which the scheduler role
    does not get. Instead the DELETE runs in a savepoint and the transaction's own count of
    deleted messages tells whether the cascade took more than was counted; if so the
    savepoint is rolled back and the conversations are tried one by one, the one written
    to staying (with its new message) until a later run."""
    ids: sa.BindParameter[list[str]] = sa.bindparam("ids", expanding=True)
    delete = sa.delete(conv).where(conv.c.id.in_(ids), expired).returning(conv.c.id)
    if conn.dialect.name != "postgresql":  # one writer at a time: nothing can come between
        return [r[0] for r in conn.execute(delete, {"ids": chosen})]
    taken = sa.text("SELECT pg_stat_get_xact_tuples_deleted('ai_messages'::regclass)")
    if not conn.execute(sa.text("SELECT current_setting('track_counts') = 'on'")).scalar():
        # The counter stays at 0 with track_counts off: the check cannot be made, and
        # failing it every time would keep every conversation. Delete as before it.
        log.warning("track_counts is off: conversation retention cannot tell a message "
                    "written while it deletes (turn it on to keep such conversations)")
        return [str(r[0]) for r in conn.execute(delete, {"ids": chosen})]
    before = int(conn.execute(taken).scalar_one())
    savepoint = conn.begin_nested()
    deleted = [str(r[0]) for r in conn.execute(delete, {"ids": chosen})]
    if int(conn.execute(taken).scalar_one()) - before == sum(messages.get(c, 0)
                                                              for c in deleted):
        savepoint.commit()
        return deleted
    savepoint.rollback()
    if len(chosen) == 1:
        return []
    return [c for one in chosen for c in _delete_conversations(conn, [one], expired, messages)]


# --- retry ------------------------------------------------------------------------------

def failed_rows(conn: sa.Connection, ids: Sequence[str]) -> list[dict[str, Any]]:
    """What admission needs of those of `ids` that are failed: id, user_id, trigger_type,
    event_at (the rules' columns)."""
    if not ids:
        return []
    rows = conn.execute(
        sa.select(sf.c.id, sf.c.user_id, sf.c.trigger_type, sf.c.event_at)
        .where(sf.c.id.in_(sa.bindparam("ids", expanding=True)), sf.c.status == FAILED),
        {"ids": list(ids)})
    return [dict(r) for r in rows.mappings()]


# --- right to be forgotten ----------------------------------------------------------------

def _user_conversations(user_id: str) -> sa.Select[Any]:
    return sa.select(conv.c.id).where(conv.c.user_id == user_id)


def _user_messages(user_id: str) -> sa.ColumnElement[bool]:
    # Their own messages, and every message of their conversations (the assistant's replies
    # quote them; the conversation cascade would delete those anyway).
    return sa.or_(msg.c.user_id == user_id, msg.c.conversation_id.in_(_user_conversations(user_id)))


def count_user_data(conn: sa.Connection, user_id: str) -> dict[str, int]:
    def count(table: sa.Table, cond: sa.ColumnElement[bool]) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(cond)
                                ).scalar_one())

    return {
        "followups": count(sf, sf.c.user_id == user_id),
        "messages": count(msg, _user_messages(user_id)),
        "conversations": count(conv, conv.c.user_id == user_id),
    }


def lock_user_followups(conn: sa.Connection, user_id: str) -> list[dict[str, Any]]:
    """Lock the user's follow-ups (PostgreSQL; a pass claiming with SKIP LOCKED passes them
    by) and return id, status and locked_until of each."""
    query = sa.select(sf.c.id, sf.c.status, sf.c.locked_until).where(sf.c.user_id == user_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return [dict(r) for r in conn.execute(query).mappings()]


def delete_user_data(conn: sa.Connection, user_id: str) -> dict[str, int]:
    """The guide's three DELETEs, children first; returns the rows deleted per table."""
    followups = conn.execute(sa.delete(sf).where(sf.c.user_id == user_id)).rowcount
    messages = conn.execute(sa.delete(msg).where(_user_messages(user_id))).rowcount
    conversations = conn.execute(sa.delete(conv).where(conv.c.user_id == user_id)).rowcount
    return {"followups": int(followups or 0), "messages": int(messages or 0),
            "conversations": int(conversations or 0)}

"""Queries behind `followup db reencrypt`: rows whose message text is not sealed with the
current key, read and rewritten in keyset batches."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from followup_cli.crypto import CUSTOM_MESSAGE
from followup_cli.db import rules
from followup_cli.db.schema import scheduled_followups as sf


def _custom_message() -> sa.ColumnElement[str]:
    # trigger_data->>'custom_message' on PostgreSQL, json_extract() on SQLite.
    value: sa.ColumnElement[str] = sf.c.trigger_data[CUSTOM_MESSAGE].as_string()
    return value


def _stale(prefix: str) -> sa.ColumnElement[bool]:
    """Message text present but not sealed with the key whose values start with `prefix`
    (plain rows included): the test an operator writes with LIKE, exact in letter case on
    SQLite too."""
    custom = _custom_message()
    return sa.or_(
        sa.and_(sf.c.message_content.is_not(None),
                ~rules.starts_with(sf.c.message_content, prefix)),
        sa.and_(custom.is_not(None), ~rules.starts_with(custom, prefix)),
    )


def _has_text() -> sa.ColumnElement[bool]:
    return sa.or_(sf.c.message_content.is_not(None), _custom_message().is_not(None))


def count_texts(conn: sa.Connection, prefix: str) -> tuple[int, int]:
    """(rows with message text, those of them not sealed with the current key)."""
    row = conn.execute(sa.select(
        sa.func.count().filter(_has_text()),
        sa.func.count().filter(_stale(prefix)),
    ).select_from(sf)).one()
    return int(row[0]), int(row[1])


def stale_ids_after(conn: sa.Connection, prefix: str, after: str | None, limit: int
                    ) -> list[str]:
    """The next `limit` ids (in id order, after `after`) of rows to rewrite. Keyset, so a
    batch costs the same at the end of a large table as at its start."""
    query = sa.select(sf.c.id).where(_stale(prefix))
    if after is not None:
        query = query.where(sf.c.id > after)
    return [r[0] for r in conn.execute(query.order_by(sf.c.id).limit(limit))]


def texts_of(conn: sa.Connection, ids: Sequence[str], *, lock: bool) -> list[dict[str, Any]]:
    """id, message_content and trigger_data of those of `ids` that exist. With `lock` on
    PostgreSQL the rows are locked, and rows another session holds are left out instead
    of waited for (FOR NO KEY UPDATE SKIP LOCKED): a delivery pass is never stalled."""
    query = sa.select(sf.c.id, sf.c.message_content, sf.c.trigger_data).where(
        sf.c.id.in_(sa.bindparam("ids", expanding=True)))
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, key_share=True)
    return [dict(r) for r in conn.execute(query, {"ids": list(ids)}).mappings()]


def existing_ids(conn: sa.Connection, ids: Sequence[str]) -> set[str]:
    """Those of `ids` that exist, locked or not (a plain read waits for no lock)."""
    if not ids:
        return set()
    rows = conn.execute(sa.select(sf.c.id).where(sf.c.id.in_(sa.bindparam("ids", expanding=True))),
                        {"ids": list(ids)})
    return {r[0] for r in rows}


def write_texts(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store new message_content and trigger_data of rows (id, message_content,
    trigger_data): one UPDATE ... FROM unnest() on PostgreSQL, an executemany on SQLite."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        # Three arrays, one statement: no per-row round trip and no per-row SQL to compile.
        conn.execute(sa.text(
            "UPDATE scheduled_followups AS f SET message_content = n.message, "
            "trigger_data = n.data::jsonb "
            "FROM unnest(CAST(:ids AS text[]), CAST(:messages AS text[]), "
            "CAST(:datas AS text[])) AS n(id, message, data) WHERE f.id = n.id"),
            {"ids": [r["id"] for r in rows],
             "messages": [r["message_content"] for r in rows],
             "datas": [json.dumps(r["trigger_data"], ensure_ascii=False) for r in rows]})
        return
    conn.execute(
        sa.update(sf).where(sf.c.id == sa.bindparam("b_id")).values(
            message_content=sa.bindparam("b_message"), trigger_data=sa.bindparam("b_data")),
        [{"b_id": r["id"], "b_message": r["message_content"], "b_data": r["trigger_data"]}
         for r in rows])

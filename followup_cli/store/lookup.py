"""Finding follow-ups by what an operator types: whole ids, id prefixes, and the failed ones
a bulk retry selects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from followup_cli.db.schema import FAILED
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.store.statements import failed_at

CHUNK = 5000  # ids per IN list: well inside SQLite's bound-parameter limit


def existing_ids(conn: sa.Connection, ids: Sequence[str]) -> set[str]:
    """Those of `ids` that name a follow-up."""
    found: set[str] = set()
    query = sa.select(sf.c.id).where(sf.c.id.in_(sa.bindparam("ids", expanding=True)))
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start:start + CHUNK])
        found.update(str(r[0]) for r in conn.execute(query, {"ids": chunk}))
    return found


def ids_starting_with(conn: sa.Connection, prefix: str, limit: int) -> list[str]:
    """Up to `limit` ids that begin with `prefix`, in order. substr() rather than LIKE: exact
    and case-sensitive on both databases, with no wildcard characters to escape."""
    rows = conn.execute(
        sa.select(sf.c.id)
        .where(sa.func.substr(sf.c.id, 1, len(prefix)) == prefix)
        .order_by(sf.c.id)
        .limit(limit))
    return [str(r[0]) for r in rows]


def failed_ids(conn: sa.Connection, *, user_id: str | None, trigger_type: str | None,
               since: datetime | None, after: str | None, limit: int) -> list[str]:
    """The next page (by id, after `after`) of failed follow-ups that match; `since` is
    compared with when they failed (their last attempt)."""
    query = sa.select(sf.c.id).where(sf.c.status == FAILED)
    if user_id is not None:
        query = query.where(sf.c.user_id == user_id)
    if trigger_type is not None:
        query = query.where(sf.c.trigger_type == trigger_type)
    if since is not None:
        query = query.where(failed_at() >= since)
    if after is not None:
        query = query.where(sf.c.id > after)
    return [str(r[0]) for r in conn.execute(query.order_by(sf.c.id).limit(limit))]

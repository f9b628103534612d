"""Queries on scheduled_followups used by scheduling and cancelling."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from followup_cli.db.schema import (
    CANCELLED,
    PENDING,
    POST_EVENT,
    PROCESSING,
    REENGAGEMENT,
)
from followup_cli.db.schema import scheduled_followups as sf

LIVE = (PENDING, PROCESSING)  # not yet delivered: what the cap and duplicate rules count
DUPLICATE_WINDOW = timedelta(days=1)


def insert(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert follow-ups; SQLAlchemy batches many rows into multi-row INSERTs."""
    if rows:
        conn.execute(sa.insert(sf), list(rows))


def pending_post_event_near(conn: sa.Connection, user_id: str, event_at: datetime
                            ) -> str | None:
    """A live post-event follow-up of the user whose event is within ±1 day."""
    found = conn.execute(
        sa.select(sf.c.id).where(
            sf.c.user_id == user_id,
            sf.c.trigger_type == POST_EVENT,
            sf.c.status.in_(LIVE),
            sf.c.event_at.between(event_at - DUPLICATE_WINDOW, event_at + DUPLICATE_WINDOW),
        ).order_by(sf.c.created_at, sf.c.id).limit(1)
    ).scalar()
    return None if found is None else str(found)


def count_live(conn: sa.Connection, user_id: str) -> int:
    return int(conn.execute(
        sa.select(sa.func.count()).select_from(sf)
        .where(sf.c.user_id == user_id, sf.c.status.in_(LIVE))
    ).scalar_one())


def live_post_events(conn: sa.Connection, user_ids: Sequence[str]
                     ) -> list[tuple[str, str, datetime]]:
    """(user_id, id, event_at) of live post-event follow-ups of many users."""
    out: list[tuple[str, str, datetime]] = []
    query = sa.select(sf.c.user_id, sf.c.id, sf.c.event_at).where(
        sf.c.user_id.in_(sa.bindparam("users", expanding=True)),
        sf.c.trigger_type == POST_EVENT, sf.c.status.in_(LIVE),
        sf.c.event_at.is_not(None))
    for start in range(0, len(user_ids), 5000):
        out.extend((r[0], r[1], r[2]) for r in conn.execute(
            query, {"users": list(user_ids[start:start + 5000])}))
    return out


def count_live_many(conn: sa.Connection, user_ids: Sequence[str]) -> dict[str, int]:
    query = (sa.select(sf.c.user_id, sa.func.count())
             .where(sf.c.user_id.in_(sa.bindparam("users", expanding=True)),
                    sf.c.status.in_(LIVE))
             .group_by(sf.c.user_id))
    out: dict[str, int] = {}
    for start in range(0, len(user_ids), 5000):
        out.update({r[0]: int(r[1]) for r in conn.execute(
            query, {"users": list(user_ids[start:start + 5000])})})
    return out


def reengaged_since(conn: sa.Connection, user_id: str, since: datetime | None) -> str | None:
    """A re-engagement that closes the user's current inactivity period: one that is live,
    or one created after `since` (their last activity) that was not cancelled."""
    period: sa.ColumnElement[bool] = sf.c.status != CANCELLED
    if since is not None:
        period = sa.or_(sf.c.status.in_(LIVE),
                        sa.and_(sf.c.status != CANCELLED, sf.c.created_at > since))
    found = conn.execute(
        sa.select(sf.c.id).where(
            sf.c.user_id == user_id, sf.c.trigger_type == REENGAGEMENT, period)
        .order_by(sf.c.created_at.desc(), sf.c.id).limit(1)
    ).scalar()
    return None if found is None else str(found)


def statuses(conn: sa.Connection, ids: Sequence[str]) -> dict[str, str]:
    rows = conn.execute(sa.select(sf.c.id, sf.c.status).where(
        sf.c.id.in_(sa.bindparam("ids", expanding=True))), {"ids": list(ids)})
    return {r[0]: r[1] for r in rows}


def cancel_pending(conn: sa.Connection, ids: Sequence[str], now: datetime) -> list[str]:
    """Cancel those of `ids` that are still pending; returns the ids it cancelled."""
    if not ids:
        return []
    rows = conn.execute(
        sa.update(sf)
        .where(sf.c.id.in_(sa.bindparam("ids", expanding=True)), sf.c.status == PENDING)
        .values(status=CANCELLED, cancelled_at=now)
        .returning(sf.c.id),
        {"ids": list(ids)},
    )
    return [r[0] for r in rows]


def cancel_user(conn: sa.Connection, user_id: str, trigger_type: str | None, now: datetime
                ) -> list[str]:
    cond = [sf.c.user_id == user_id, sf.c.status == PENDING]
    if trigger_type is not None:
        cond.append(sf.c.trigger_type == trigger_type)
    rows = conn.execute(
        sa.update(sf).where(*cond).values(status=CANCELLED, cancelled_at=now)
        .returning(sf.c.id))
    return sorted(r[0] for r in rows)


def get(conn: sa.Connection, followup_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(sf).where(sf.c.id == followup_id)).mappings().first()
    return None if row is None else dict(row)

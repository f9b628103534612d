"""Queries on single follow-ups: state by id, cancelling, reading one row. (Creating
them is the admission path's: store/admission.py.)"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from followup_cli.db.schema import (
    CANCELLED,
    PENDING,
)
from followup_cli.db.schema import scheduled_followups as sf


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

"""Queries of the delivery pass: lease recovery, the due claim, batched write-back.

The claim and the recovery read only the partial indexes ix_scheduled_followups_due
(status = 'pending') and ix_scheduled_followups_leased (status = 'processing'), so an idle
pass costs the same however many executed, failed or cancelled rows the table holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from followup_cli.db.schema import FAILED, PENDING, PROCESSING, UTCDateTime
from followup_cli.db.schema import scheduled_followups as sf

LEASE_EXPIRED = "lease expired: the pass holding it died before writing back"

# What a pass needs to build a delivery and decide its outcome.
CLAIM_COLUMNS = (
    sf.c.id, sf.c.user_id, sf.c.conversation_id, sf.c.trigger_type, sf.c.trigger_data,
    sf.c.template_id, sf.c.message_content, sf.c.scheduled_at, sf.c.next_attempt_at,
    sf.c.retry_count, sf.c.created_at,
)


# Status as SQL literals, not bound parameters: only then can SQLite's planner prove that
# a query matches a partial index's WHERE clause.
IS_PENDING = sf.c.status == sa.literal_column(f"'{PENDING}'")
IS_PROCESSING = sf.c.status == sa.literal_column(f"'{PROCESSING}'")


# SQLite's planner, lacking statistics, prefers the (status, scheduled_at) index and sorts
# every pending row; the partial index yields them already in order. SQLAlchemy renders
# no SQLite index hints, hence the text.
SQLITE_DUE_IDS = sa.text(
    "SELECT id FROM scheduled_followups INDEXED BY ix_scheduled_followups_due "
    f"WHERE status = '{PENDING}' AND next_attempt_at <= :due "
    "ORDER BY next_attempt_at LIMIT :n"
).bindparams(sa.bindparam("due", type_=UTCDateTime()), sa.bindparam("n", type_=sa.Integer()))


def _due(due_before: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(IS_PENDING, sf.c.next_attempt_at <= due_before)


def recover_expired(conn: sa.Connection, *, now: datetime, max_retries: int
                    ) -> tuple[int, int]:
    """Give back the claims of passes that died: set-based, one statement.

    A crashed attempt is always delivered again (at-least-once), even when it was the last
    one allowed: recovery fails a row only when its count is already one past
    FOLLOWUP_MAX_RETRIES, i.e. after it was redelivered once and the pass died again. So a
    message that kills every pass ends `failed` after max_retries + 2 crashes instead of
    looping for ever. The others are due at once. Returns (requeued, failed).
    """
    attempts = sf.c.retry_count + 1
    rows = conn.execute(
        sa.update(sf)
        .where(IS_PROCESSING, sf.c.locked_until < now)
        .values(
            status=sa.case((attempts > max_retries + 1, FAILED), else_=PENDING),
            retry_count=attempts,
            error_message=LEASE_EXPIRED,
            next_attempt_at=now,
            # when the lost attempt is known to have ended: the failure alert and
            # `cleanup --include-failed` read failures by it
            last_attempt_at=now,
            locked_until=None,
            locked_by=None,
        )
        .returning(sf.c.status)
    ).all()
    failed = sum(1 for r in rows if r[0] == FAILED)
    return len(rows) - failed, failed


def claim_due(conn: sa.Connection, *, due_before: datetime, limit: int, run_id: str,
              locked_until: datetime) -> list[dict[str, Any]]:
    """Claim up to `limit` due follow-ups for this pass, oldest first.

    PostgreSQL: a MATERIALIZED CTE takes the ids with FOR UPDATE SKIP LOCKED and feeds
    UPDATE ... FROM. The fence matters (Oban makes the same point): a LIMIT subquery
    inlined into the UPDATE may be re-run by the planner and lock more than `limit` rows.
    Concurrent passes skip each other's locked rows instead of waiting.
    SQLite: the transaction is BEGIN IMMEDIATE, so select-then-update cannot race.
    """
    update = sa.update(sf).values(status=PROCESSING, locked_until=locked_until,
                                  locked_by=run_id).returning(*CLAIM_COLUMNS)
    if conn.dialect.name == "postgresql":
        due = (
            sa.select(sf.c.id).where(_due(due_before)).order_by(sf.c.next_attempt_at)
            .limit(limit).with_for_update(skip_locked=True)
            .cte("due").prefix_with("MATERIALIZED")
        )
        update = update.where(sf.c.id == due.c.id)
        params: dict[str, Any] = {}
    else:
        ids = [r[0] for r in conn.execute(SQLITE_DUE_IDS, {"due": due_before, "n": limit})]
        if not ids:
            return []
        update = update.where(sf.c.id.in_(sa.bindparam("ids", expanding=True)))
        params = {"ids": ids}
    rows = [dict(r) for r in conn.execute(update, params).mappings()]
    # RETURNING order is unspecified; deliver oldest first.
    rows.sort(key=lambda r: (r["next_attempt_at"], r["id"]))
    return rows


def _written_by(run_id_param: str) -> sa.ColumnElement[bool]:
    # Every write-back is fenced by the lease holder: a pass whose lease was recovered and
    # claimed by another pass can never overwrite that pass's result.
    return sa.and_(sf.c.id == sa.bindparam("b_id"),
                   sf.c.locked_by == sa.bindparam(run_id_param),
                   sf.c.status == PROCESSING)


# PostgreSQL: one set-based statement per batch; psycopg2 sends the lists as arrays.
PG_MARK_EXECUTED = sa.text(
    "UPDATE scheduled_followups AS f SET status = 'executed', executed_at = v.at,"
    " last_attempt_at = v.at, locked_until = NULL, locked_by = NULL"
    " FROM unnest(CAST(:ids AS varchar[]), CAST(:ats AS timestamptz[])) AS v(id, at)"
    f" WHERE f.id = v.id AND f.locked_by = :run AND f.status = '{PROCESSING}'"
)


def mark_executed(conn: sa.Connection, run_id: str, done: Sequence[tuple[str, datetime]]
                  ) -> None:
    """(id, executed and attempted at) of delivered follow-ups, in one statement on
    PostgreSQL (UPDATE ... FROM unnest) and one executemany on SQLite."""
    if not done:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(PG_MARK_EXECUTED, {"ids": [fid for fid, _ in done],
                                        "ats": [at for _, at in done], "run": run_id})
        return
    conn.execute(
        sa.update(sf).where(_written_by("b_run")).values(
            status="executed", executed_at=sa.bindparam("b_at"),
            last_attempt_at=sa.bindparam("b_at"), locked_until=None, locked_by=None),
        [{"b_id": fid, "b_run": run_id, "b_at": at} for fid, at in done],
    )


def mark_attempt_failed(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """rows: b_id, b_run, b_status (pending or failed), b_retry_count, b_error, b_next,
    b_at. scheduled_at is never touched: the delay metric counts from the original time."""
    if not rows:
        return
    conn.execute(
        sa.update(sf).where(_written_by("b_run")).values(
            status=sa.bindparam("b_status"), retry_count=sa.bindparam("b_retry_count"),
            error_message=sa.bindparam("b_error"), next_attempt_at=sa.bindparam("b_next"),
            last_attempt_at=sa.bindparam("b_at"), locked_until=None, locked_by=None),
        list(rows),
    )


def release(conn: sa.Connection, ids: Sequence[str], run_id: str) -> int:
    """Hand claimed but unattempted follow-ups back to pending, untouched otherwise."""
    if not ids:
        return 0
    result = conn.execute(
        sa.update(sf)
        .where(sf.c.id.in_(sa.bindparam("ids", expanding=True)),
               sf.c.locked_by == run_id, sf.c.status == PROCESSING)
        .values(status=PENDING, locked_until=None, locked_by=None),
        {"ids": list(ids)},
    )
    return int(result.rowcount or 0)


def count_due(conn: sa.Connection, *, due_before: datetime) -> int:
    return int(conn.execute(
        sa.select(sa.func.count()).select_from(sf).where(_due(due_before))).scalar_one())


def list_due(conn: sa.Connection, *, due_before: datetime, limit: int
             ) -> list[dict[str, Any]]:
    """The first `limit` due follow-ups, in claim order, without locking anything."""
    query = (sa.select(*CLAIM_COLUMNS).where(_due(due_before))
             .order_by(sf.c.next_attempt_at).limit(limit))
    return [dict(r) for r in conn.execute(query).mappings()]

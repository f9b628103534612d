"""Queries of the delivery pass: lease recovery, the due claim, lease renewal, batched
write-back.

The claim and the recovery read only the partial indexes ix_scheduled_followups_due
(status = 'pending') and ix_scheduled_followups_leased (status = 'processing'), so an idle
pass costs the same however many executed, failed or cancelled rows the table holds. Both
skip rows another session has locked: a row held elsewhere never stalls a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from followup_cli.db import rules
from followup_cli.db.schema import FAILED, PENDING, PROCESSING, UTCDateTime
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.store.driver import raw_cursor

LEASE_EXPIRED = "lease expired: the pass holding it died before writing back"
RECOVER_BATCH = 1000


class Claimed(NamedTuple):
    """What a pass needs to build a delivery and decide its outcome."""

    id: str
    user_id: str
    conversation_id: str
    trigger_type: str
    trigger_data: Any
    template_id: str | None
    message_content: str | None
    scheduled_at: datetime
    next_attempt_at: datetime
    retry_count: int
    created_at: datetime


CLAIM_COLUMNS = tuple(sf.c[name] for name in Claimed._fields)
IS_PENDING = rules.is_due_status(sf)
IS_PROCESSING = rules.is_held(sf)

# SQLite's planner, lacking statistics, prefers the (status, scheduled_at) index and sorts
# every pending row; the partial index yields them already in order. SQLAlchemy renders
# no SQLite index hints, hence the text.
SQLITE_DUE_IDS = sa.text(
    "SELECT id FROM scheduled_followups INDEXED BY ix_scheduled_followups_due "
    f"WHERE status = '{PENDING}' AND next_attempt_at <= :due "
    "ORDER BY next_attempt_at LIMIT :n"
).bindparams(sa.bindparam("due", type_=UTCDateTime()), sa.bindparam("n", type_=sa.Integer()))
SQLITE_EXPIRED_IDS = sa.text(
    "SELECT id FROM scheduled_followups INDEXED BY ix_scheduled_followups_leased "
    f"WHERE status = '{PROCESSING}' AND locked_until < :now LIMIT :n"
).bindparams(sa.bindparam("now", type_=UTCDateTime()), sa.bindparam("n", type_=sa.Integer()))


def _due(due_before: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(IS_PENDING, sf.c.next_attempt_at <= due_before)


def _locked_ids(conn: sa.Connection, query: sa.Select[Any], sqlite_query: sa.TextClause,
                params: dict[str, Any]) -> sa.CTE | list[str]:
    """The ids a statement should change: on PostgreSQL a MATERIALIZED CTE that locks them
    with FOR UPDATE SKIP LOCKED (the fence matters, as Oban found: a LIMIT subquery inlined
    into an UPDATE may be re-run by the planner and lock more rows); on SQLite, whose write
    transactions are serialized (BEGIN IMMEDIATE), the ids themselves."""
    if conn.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True).cte("chosen").prefix_with("MATERIALIZED")
    return [r[0] for r in conn.execute(sqlite_query, params)]


def recover_expired(conn: sa.Connection, *, now: datetime, max_retries: int
                    ) -> tuple[int, int]:
    """Give back at most RECOVER_BATCH claims of passes that died; rows another session
    has locked are left for the next pass. Returns (requeued, failed).

    A crashed attempt is always delivered again (at-least-once), even when it was the last
    one allowed: recovery fails a row only when its count is already one past
    FOLLOWUP_MAX_RETRIES, i.e. after it was redelivered once and the pass died again. So a
    message that kills every pass ends `failed` after max_retries + 2 crashes instead of
    looping for ever. The others are due at once.
    """
    chosen = _locked_ids(
        conn,
        sa.select(sf.c.id).where(IS_PROCESSING, sf.c.locked_until < now)
        .limit(RECOVER_BATCH),
        SQLITE_EXPIRED_IDS, {"now": now, "n": RECOVER_BATCH})
    attempts = sf.c.retry_count + 1
    update = sa.update(sf).values(
        status=sa.case((attempts > max_retries + 1, FAILED), else_=PENDING),
        retry_count=attempts,
        error_message=LEASE_EXPIRED,
        next_attempt_at=now,
        # when the lost attempt is known to have ended: the failure alert and
        # `cleanup --include-failed` read failures by it
        last_attempt_at=now,
        locked_until=None,
        locked_by=None,
    ).returning(sf.c.status)
    if isinstance(chosen, list):
        if not chosen:
            return 0, 0
        rows = conn.execute(update.where(sf.c.id.in_(chosen), IS_PROCESSING)).all()
    else:
        rows = conn.execute(update.where(sf.c.id == chosen.c.id)).all()
    failed = sum(1 for r in rows if r[0] == FAILED)
    return len(rows) - failed, failed


# PostgreSQL: the claim on the raw driver (rows come back as plain tuples, no per-value type
# processing: the hot path of a pass). Its plan must not depend on statistics: right after
# a bulk import (autovacuum may be off) the planner would sort every due row for each claim
# (12 ms a claim instead of 0.7 ms at 100,000 due); walking the due index in order is always
# right, so the claim's transaction says so.
PG_CLAIM_PLAN = ("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; "
                 "SET LOCAL enable_sort = off; ")
PG_CLAIM_STATEMENT = (
    "WITH due AS MATERIALIZED (SELECT id FROM scheduled_followups"
    f" WHERE status = '{PENDING}' AND next_attempt_at <= %(due)s"
    " ORDER BY next_attempt_at LIMIT %(n)s FOR UPDATE SKIP LOCKED)"
    f" UPDATE scheduled_followups AS f SET status = '{PROCESSING}', locked_until = %(until)s,"
    " locked_by = %(run)s FROM due WHERE f.id = due.id RETURNING "
    + ", ".join(f"f.{name}" for name in Claimed._fields)
)
PG_CLAIM = PG_CLAIM_PLAN + PG_CLAIM_STATEMENT


def claim_due(conn: sa.Connection, *, due_before: datetime, limit: int, run_id: str,
              locked_until: datetime) -> list[Claimed]:
    """Claim up to `limit` due follow-ups for this pass, oldest first. Concurrent passes
    skip each other's locked rows instead of waiting."""
    if conn.dialect.name == "postgresql":
        with raw_cursor(conn, "claim") as cursor:
            cursor.execute(PG_CLAIM, {"due": due_before, "n": limit, "until": locked_until,
                                      "run": run_id})
            rows = [Claimed(*r) for r in cursor.fetchall()]
        rows.sort(key=lambda r: (r.next_attempt_at, r.id))  # RETURNING order is unspecified
        return rows
    chosen = _locked_ids(
        conn,
        sa.select(sf.c.id).where(_due(due_before)).order_by(sf.c.next_attempt_at).limit(limit),
        SQLITE_DUE_IDS, {"due": due_before, "n": limit})
    update = sa.update(sf).values(status=PROCESSING, locked_until=locked_until,
                                  locked_by=run_id).returning(*CLAIM_COLUMNS)
    if isinstance(chosen, list):
        if not chosen:
            return []
        update = update.where(sf.c.id.in_(chosen))
    else:
        update = update.where(sf.c.id == chosen.c.id)
    rows = [Claimed(*r) for r in conn.execute(update)]
    # RETURNING order is unspecified; deliver oldest first.
    rows.sort(key=lambda r: (r.next_attempt_at, r.id))
    return rows


def renew(conn: sa.Connection, run_id: str, locked_until: datetime) -> int:
    """Extend the lease of everything this pass still holds (its heartbeat)."""
    result = conn.execute(sa.update(sf).where(IS_PROCESSING, sf.c.locked_by == run_id)
                          .values(locked_until=locked_until))
    return int(result.rowcount or 0)


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


PG_MARK_EXECUTED_AT = (
    "UPDATE scheduled_followups SET status = 'executed', executed_at = %(at)s,"
    " last_attempt_at = %(at)s, locked_until = NULL, locked_by = NULL"
    f" WHERE id = ANY(%(ids)s) AND locked_by = %(run)s AND status = '{PROCESSING}'"
)


def mark_executed(conn: sa.Connection, run_id: str, done: Sequence[tuple[str, datetime]]
                  ) -> None:
    """(id, executed and attempted at) of delivered follow-ups, in one statement on
    PostgreSQL (a batch written at one instant: `id = ANY(...)`; else UPDATE ... FROM
    unnest) and one executemany on SQLite."""
    if not done:
        return
    if conn.dialect.name == "postgresql":
        ids = [fid for fid, _ in done]
        first = done[0][1]
        if all(at == first for _, at in done):
            conn.exec_driver_sql(PG_MARK_EXECUTED_AT, {"at": first, "ids": ids, "run": run_id})
        else:
            conn.execute(PG_MARK_EXECUTED, {"ids": ids, "ats": [at for _, at in done],
                                            "run": run_id})
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


def list_due(conn: sa.Connection, *, due_before: datetime, limit: int) -> list[Claimed]:
    """The first `limit` due follow-ups, in claim order, without locking anything."""
    query = (sa.select(*CLAIM_COLUMNS).where(_due(due_before))
             .order_by(sf.c.next_attempt_at).limit(limit))
    return [Claimed(*r) for r in conn.execute(query)]

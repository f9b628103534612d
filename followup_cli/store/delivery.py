"""Queries of the delivery pass: lease recovery, the due claim, lease renewal, batched
write-back. Their SQL is in store/statements.py (run by name: a pass on PostgreSQL never
imports SQLAlchemy); what they read and skip is described there.

Each takes the transaction's statements (store/executor.Sql) or a SQLAlchemy connection,
whose transaction they then share.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from followup_cli.db.states import FAILED
from followup_cli.store.executor import Sql, document, of
from followup_cli.timeutil import utc_stamp

RECOVER_BATCH = 1000


class Claimed(NamedTuple):
    """What a pass needs to build a delivery and decide its outcome (the columns of
    statements.CLAIM_COLUMNS, in that order)."""

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


class Failure(NamedTuple):
    """A failed attempt's write-back: pending again (retry at `next_attempt_at`) or
    failed for good."""

    id: str
    status: str
    retry_count: int
    error: str
    next_attempt_at: datetime
    at: datetime


def _claimed(sql: Sql, rows: list[tuple[Any, ...]]) -> list[Claimed]:
    """Rows as Claimed, oldest first (RETURNING order is unspecified). psycopg2 gives
    aware datetimes and decoded JSON already; sqlite3 gives the stored text."""
    if sql.is_postgres:
        claimed = [Claimed(*r) for r in rows]
    else:
        claimed = [Claimed(r[0], r[1], r[2], r[3],
                           document(r[4]),
                           r[5], r[6], utc_stamp(r[7]), utc_stamp(r[8]), r[9],
                           utc_stamp(r[10])) for r in rows]
    claimed.sort(key=lambda r: (r.next_attempt_at, r.id))
    return claimed


def recover_expired(conn: Any, *, now: datetime, max_retries: int) -> tuple[int, int]:
    """Give back at most RECOVER_BATCH claims of passes that died; rows another session
    has locked are left for the next pass. Returns (requeued, failed).

    A crashed attempt is always delivered again (at-least-once), even when it was the last
    one allowed: recovery fails a row only when its count is already one past
    FOLLOWUP_MAX_RETRIES, i.e. after it was redelivered once and the pass died again. So a
    message that kills every pass ends `failed` after max_retries + 2 crashes instead of
    looping for ever. The others are due at once.
    """
    rows = of(conn).run("delivery.recover", now=now, n=RECOVER_BATCH,
                        failed_after=max_retries + 1).rows
    failed = sum(1 for r in rows if r[0] == FAILED)
    return len(rows) - failed, failed


def claim_due(conn: Any, *, due_before: datetime, limit: int, run_id: str,
              locked_until: datetime) -> list[Claimed]:
    """Claim up to `limit` due follow-ups for this pass, oldest first."""
    sql = of(conn)
    plan = "delivery.claim_plan" if sql.is_postgres else None  # see statements.py
    result = sql.run("delivery.claim", after=plan, due=due_before, n=limit,
                     until=locked_until, run=run_id)
    return _claimed(sql, result.rows)


def renew(conn: Any, run_id: str, locked_until: datetime) -> int:
    """Extend the lease of everything this pass still holds (its heartbeat)."""
    return of(conn).run("delivery.renew", run=run_id, until=locked_until).rowcount


def mark_executed(conn: Any, run_id: str, done: Sequence[tuple[str, datetime]]) -> None:
    """(id, executed and attempted at) of delivered follow-ups, in one statement on
    PostgreSQL (`id = ANY(...)` for a batch written at one instant, else UPDATE ... FROM
    unnest) and one executemany on SQLite."""
    if not done:
        return
    sql = of(conn)
    if not sql.is_postgres:
        sql.run_many("delivery.mark_executed",
                     ({"id": fid, "at": at, "run": run_id} for fid, at in done))
        return
    ids = [fid for fid, _ in done]
    first = done[0][1]
    if all(at == first for _, at in done):
        sql.run("delivery.mark_executed_at", ids=ids, at=first, run=run_id)
    else:
        sql.run("delivery.mark_executed", ids=ids, ats=[at for _, at in done], run=run_id)


def mark_attempt_failed(conn: Any, run_id: str, failures: Sequence[Failure]) -> None:
    """Failed attempts, written back in one statement (PostgreSQL) or one executemany."""
    if not failures:
        return
    failures = [f._replace(error=storable(f.error)) for f in failures]
    sql = of(conn)
    if sql.is_postgres:
        sql.run("delivery.mark_failed", run=run_id, ids=[f.id for f in failures],
                statuses=[f.status for f in failures],
                retry_counts=[f.retry_count for f in failures],
                errors=[f.error for f in failures],
                nexts=[f.next_attempt_at for f in failures], ats=[f.at for f in failures])
        return
    sql.run_many("delivery.mark_failed", (
        {"id": f.id, "run": run_id, "status": f.status, "retry_count": f.retry_count,
         "error": f.error, "next": f.next_attempt_at, "at": f.at} for f in failures))


def storable(text: str) -> str:
    """An error text as a text column can hold it: PostgreSQL's cannot hold NUL (psycopg2
    refuses the whole statement), and an error may quote a command's or a receiver's
    bytes. The same on SQLite, so both keep the same text."""
    return text.replace("\x00", "\ufffd")


def release(conn: Any, ids: Sequence[str], run_id: str) -> int:
    """Hand claimed but unattempted follow-ups back to pending, untouched otherwise."""
    if not ids:
        return 0
    sql = of(conn)
    if sql.is_postgres:
        return sql.run("delivery.release", ids=list(ids), run=run_id).rowcount
    return sql.run_many("delivery.release", ({"id": fid, "run": run_id} for fid in ids))


def count_due(conn: Any, *, due_before: datetime) -> int:
    return int(of(conn).run("delivery.count_due", due=due_before).scalar())


def list_due(conn: Any, *, due_before: datetime, limit: int) -> list[Claimed]:
    """The first `limit` due follow-ups, in claim order, without locking anything."""
    sql = of(conn)
    return _claimed(sql, sql.run("delivery.list_due", due=due_before, n=limit).rows)


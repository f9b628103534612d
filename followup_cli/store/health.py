"""The reads behind `followup health` (and `serve`'s /health, and part of `stats`): a few
counts and the latest passes, each an index lookup or an aggregate over a partial index.

They run by name (store/statements.py) on either kind of connection, so `health` on
PostgreSQL runs on the raw driver without importing SQLAlchemy. Times are compared as
instants (bound parameters), never with DATE(), so "today" means the scheduler zone's day
on both databases.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from followup_cli.store.executor import as_utc, document, of


def count_by_status(conn: Any, status: str) -> int:
    return int(of(conn).run("health.count_by_status", status=status).scalar())


def count_executed_between(conn: Any, start: datetime, end: datetime) -> int:
    return int(of(conn).run("health.count_executed_between", start=start, end=end).scalar())


def count_failed_since(conn: Any, since: datetime) -> int:
    return int(of(conn).run("health.count_failed_since", since=since).scalar())


def delay_since(conn: Any, since: datetime) -> tuple[int, float | None]:
    """(count, mean delay in seconds) of the follow-ups executed after `since`."""
    count, mean = of(conn).run("health.delay_since", since=since).rows[0]
    return int(count), None if mean is None else float(mean)


def count_overdue(conn: Any, cutoff: datetime) -> int:
    """Pending follow-ups whose scheduled time is before `cutoff` (the guide's backlog)."""
    return int(of(conn).run("health.count_overdue", cutoff=cutoff).scalar())


def last_run(conn: Any, kind: str, *, statuses: Sequence[str] = (),
             exclude: Sequence[str] = ()) -> dict[str, Any] | None:
    """The most recently finished pass of a kind, optionally of one status only or not of
    one: its finished_at, status and counts. Uses ix_followup_runs_kind_finished."""
    if len(statuses) + len(exclude) > 1:
        raise ValueError("last_run takes at most one status, to keep or to exclude")
    sql = of(conn)
    if statuses:
        result = sql.run("health.last_run_of_status", kind=kind, status=statuses[0])
    elif exclude:
        result = sql.run("health.last_run_not_of_status", kind=kind, status=exclude[0])
    else:
        result = sql.run("health.last_run", kind=kind)
    row = result.first()
    if row is None:
        return None
    return {"finished_at": as_utc(row[0]), "status": row[1], "counts": document(row[2])}


def first_finished_at(conn: Any, kind: str) -> datetime | None:
    """When the oldest recorded pass of a kind finished (an index lookup)."""
    return as_utc(of(conn).run("health.first_finished_at", kind=kind).scalar())

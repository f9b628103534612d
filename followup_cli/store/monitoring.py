"""Read-only aggregate queries behind `stats`, and the rows `list`/`show` read (`health`'s
are in store/health.py).

Every query is an aggregate or a bounded page: none returns one row per follow-up of the
history. Times are compared as instants (bound parameters), never with DATE(), so "today"
means the scheduler zone's day on both databases.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from followup_cli.db.schema import EXECUTED, FAILED
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.store.statements import delay_seconds


def _delay_seconds(conn: sa.Connection) -> sa.ColumnElement[Any]:
    return delay_seconds(conn.dialect.name)


@dataclass(frozen=True)
class DayAggregate:
    executed: int
    avg_delay_seconds: float | None


def executed_per_bucket(conn: sa.Connection, bounds: Sequence[tuple[datetime, datetime]]
                        ) -> dict[int, DayAggregate]:
    """Executed count and mean delay per [start, end) bucket, in one query; keys are the
    bucket indexes (buckets with nothing executed are absent)."""
    if not bounds:
        return {}
    bucket = sa.case(
        *[(sa.and_(sf.c.executed_at >= start, sf.c.executed_at < end), i)
          for i, (start, end) in enumerate(bounds)],
        else_=-1,
    )
    lo = min(s for s, _ in bounds)
    hi = max(e for _, e in bounds)
    # Group in an outer query: the CASE carries bound parameters, which PostgreSQL would
    # not match between SELECT and GROUP BY.
    inner = (
        sa.select(bucket.label("bucket"), _delay_seconds(conn).label("delay"))
        .where(sf.c.status == EXECUTED, sf.c.executed_at >= lo, sf.c.executed_at < hi)
        .subquery()
    )
    rows = conn.execute(
        sa.select(inner.c.bucket, sa.func.count(), sa.func.avg(inner.c.delay))
        .group_by(inner.c.bucket)
    )
    return {int(b): DayAggregate(int(n), None if avg is None else float(avg))
            for b, n, avg in rows if int(b) >= 0}


def recent_failures(conn: sa.Connection, limit: int) -> list[dict[str, Any]]:
    """The guide's "Failed Jobs": newest first by created_at."""
    rows = conn.execute(
        sa.select(sf.c.id, sf.c.user_id, sf.c.error_message, sf.c.retry_count,
                  sf.c.created_at, sf.c.last_attempt_at, sf.c.template_id)
        .where(sf.c.status == FAILED)
        .order_by(sf.c.created_at.desc(), sf.c.id)
        .limit(limit)
    ).mappings()
    return [dict(r) for r in rows]


def template_counts(conn: sa.Connection, since: datetime) -> list[tuple[str | None, int, int, int]]:
    """(template_id, used, executed, failed) of follow-ups created after `since`, most used
    first: the guide's template distribution and template performance in one query."""
    used = sa.func.count().label("used")
    rows = conn.execute(
        sa.select(
            sf.c.template_id,
            used,
            sa.func.count(sa.case((sf.c.status == EXECUTED, 1))),
            sa.func.count(sa.case((sf.c.status == FAILED, 1))),
        )
        .where(sf.c.created_at > since)
        .group_by(sf.c.template_id)
        .order_by(used.desc(), sf.c.template_id)
    )
    return [(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]


@dataclass(frozen=True)
class ListFilter:
    """What `followup list` selects; every field optional."""

    user_id: str | None = None
    statuses: Sequence[str] = ()
    trigger_type: str | None = None
    since: datetime | None = None  # scheduled_at at or after
    until: datetime | None = None  # scheduled_at before

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        cond: list[sa.ColumnElement[bool]] = []
        if self.user_id is not None:
            cond.append(sf.c.user_id == self.user_id)
        if self.statuses:
            cond.append(sf.c.status.in_(list(self.statuses)))
        if self.trigger_type is not None:
            cond.append(sf.c.trigger_type == self.trigger_type)
        if self.since is not None:
            cond.append(sf.c.scheduled_at >= self.since)
        if self.until is not None:
            cond.append(sf.c.scheduled_at < self.until)
        return cond


def count_followups(conn: sa.Connection, where: ListFilter) -> int:
    """How many follow-ups match (`list --json`'s total)."""
    return int(conn.execute(
        sa.select(sa.func.count()).select_from(sf).where(*where.conditions())).scalar_one())


def iter_followups(conn: sa.Connection, where: ListFilter, *, limit: int | None,
                   batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Matching follow-ups, newest scheduled first, without message content, fetched
    `batch` rows at a time (a server-side cursor on PostgreSQL), so memory stays flat
    however many there are. `limit` None: all of them."""
    columns = [c for c in sf.c if c.name not in ("message_content", "trigger_data")]
    query = (sa.select(*columns).where(*where.conditions())
             .order_by(sf.c.scheduled_at.desc(), sf.c.id.desc()))
    if limit is not None:
        query = query.limit(limit)
    result = conn.execute(query, execution_options={"yield_per": batch})
    try:
        for row in result.mappings():
            yield dict(row)
    finally:
        result.close()


def list_followups(
    conn: sa.Connection,
    *,
    user_id: str | None = None,
    statuses: Sequence[str] = (),
    trigger_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """A page of follow-ups, newest scheduled first, without message content."""
    where = ListFilter(user_id, statuses, trigger_type, since, until)
    return list(iter_followups(conn, where, limit=limit))

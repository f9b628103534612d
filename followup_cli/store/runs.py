"""The run record: one row per pass (run-due, scan-inactive, ...), read by `health`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from followup_cli.db.schema import followup_runs as runs

RUNNING, OK, FAILED, ABANDONED, STOPPED = "running", "ok", "failed", "abandoned", "stopped"


def start(conn: sa.Connection, *, run_id: str, kind: str, host: str, pid: int,
          started_at: datetime) -> None:
    conn.execute(sa.insert(runs).values(id=run_id, kind=kind, host=host, pid=pid,
                                        started_at=started_at, heartbeat_at=started_at,
                                        status=RUNNING, counts={}))


def heartbeat(conn: sa.Connection, run_id: str, at: datetime) -> None:
    conn.execute(sa.update(runs).where(runs.c.id == run_id).values(heartbeat_at=at))


def finish(conn: sa.Connection, *, run_id: str, finished_at: datetime, status: str,
           counts: dict[str, Any], error_message: str | None = None) -> None:
    conn.execute(sa.update(runs).where(runs.c.id == run_id).values(
        finished_at=finished_at, heartbeat_at=finished_at, status=status, counts=counts,
        error_message=error_message))


def running(conn: sa.Connection, kind: str) -> list[dict[str, Any]]:
    """Records of passes of a kind that have not finished (alive, or dead and not yet
    noticed): id, host, pid, started_at, heartbeat_at."""
    query = (sa.select(runs.c.id, runs.c.host, runs.c.pid, runs.c.started_at,
                       runs.c.heartbeat_at)
             .where(runs.c.kind == kind, runs.c.finished_at.is_(None)))
    return [dict(r) for r in conn.execute(query).mappings()]


def abandon(conn: sa.Connection, run_id: str, last_seen: datetime) -> None:
    """Close the record of a pass that died: it finished, as far as anyone can tell, when
    it was last seen alive."""
    conn.execute(sa.update(runs).where(runs.c.id == run_id, runs.c.finished_at.is_(None))
                 .values(status=ABANDONED, finished_at=last_seen,
                         error_message="the pass died before finishing"))


def last_finished(conn: sa.Connection, kind: str) -> dict[str, Any] | None:
    """The most recently finished pass of a kind (idle passes count: they ran; abandoned
    ones do not: they did not finish)."""
    row = conn.execute(
        sa.select(runs).where(runs.c.kind == kind, runs.c.finished_at.is_not(None),
                              runs.c.status != ABANDONED)
        .order_by(runs.c.finished_at.desc()).limit(1)
    ).mappings().first()
    return None if row is None else dict(row)


def delete_finished_before(conn: sa.Connection, cutoff: datetime) -> int:
    """Retention for the run record itself."""
    result = conn.execute(sa.delete(runs).where(runs.c.finished_at < cutoff))
    return int(result.rowcount or 0)

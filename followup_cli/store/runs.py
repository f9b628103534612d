"""The run record: one row per pass (run-due, scan-inactive, ...), read by `health`.

Written by name (store/statements.py), so a delivery pass on PostgreSQL never imports
SQLAlchemy. Each function but last_finished (the tests' reader, SQLAlchemy only) takes the
transaction's statements (store/executor.Sql) or a SQLAlchemy connection, whose
transaction it then shares.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from followup_cli.db.states import RUN_ABANDONED
from followup_cli.store.executor import of
from followup_cli.timeutil import as_utc, utc_stamp


def start(conn: Any, *, run_id: str, kind: str, host: str, pid: int,
          started_at: datetime) -> None:
    of(conn).run("runs.start", id=run_id, kind=kind, host=host, pid=pid, at=started_at,
                 counts="{}")


def heartbeat(conn: Any, run_id: str, at: datetime) -> None:
    of(conn).run("runs.heartbeat", id=run_id, at=at)


def finish(conn: Any, *, run_id: str, finished_at: datetime, status: str,
           counts: dict[str, Any], error_message: str | None = None) -> None:
    of(conn).run("runs.finish", id=run_id, at=finished_at, status=status,
                 counts=json.dumps(counts), error=error_message)


def running(conn: Any, kind: str) -> list[dict[str, Any]]:
    """Records of passes of a kind that have not finished (alive, or dead and not yet
    noticed): id, host, pid, started_at, heartbeat_at."""
    return [{"id": rid, "host": host, "pid": pid, "started_at": utc_stamp(started),
             "heartbeat_at": as_utc(beat)}
            for rid, host, pid, started, beat in of(conn).run("runs.running", kind=kind).rows]


def abandon(conn: Any, run_id: str, last_seen: datetime) -> None:
    """Close the record of a pass that died: it finished, as far as anyone can tell, when
    it was last seen alive."""
    of(conn).run("runs.abandon", id=run_id, at=last_seen)


def last_finished(conn: Any, kind: str) -> dict[str, Any] | None:
    """The most recently finished pass of a kind (idle passes count: they ran; abandoned
    ones do not: they did not finish)."""
    import sqlalchemy as sa

    from followup_cli.db.schema import followup_runs as runs

    row = conn.execute(
        sa.select(runs).where(runs.c.kind == kind, runs.c.finished_at.is_not(None),
                              runs.c.status != RUN_ABANDONED)
        .order_by(runs.c.finished_at.desc()).limit(1)
    ).mappings().first()
    return None if row is None else dict(row)

"""Run records of passes: start, heartbeat, finish, and closing those of passes that died.

A pass that is killed leaves its record `running`. The next pass of the same kind closes
it as `abandoned`: at once when the dead pass ran on this host (its pid is gone), else once
its heartbeat is older than RUN_STALE (passes on other hosts cannot be asked).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

RUN_STALE = timedelta(minutes=10)
HEARTBEAT_SECONDS = 30.0  # how often a live pass touches its record


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def close_abandoned(conn: Any, kind: str, now: datetime) -> int:
    """Close the records of dead passes of `kind`; returns how many. `conn`: the
    transaction's statements or a SQLAlchemy connection (see store/runs.py)."""
    from followup_cli.store import runs

    host = socket.gethostname()
    closed = 0
    for record in runs.running(conn, kind):
        seen = record["heartbeat_at"] or record["started_at"]
        if looks_dead(record["host"], int(record["pid"]), seen, now, host_here=host):
            runs.abandon(conn, record["id"], seen)
            closed += 1
    return closed


def begin(conn: Any, *, run_id: str, kind: str, now: datetime) -> None:
    """Close dead passes' records of this kind, then record this pass as running."""
    from followup_cli.store import runs

    close_abandoned(conn, kind, now)
    runs.start(conn, run_id=run_id, kind=kind, host=socket.gethostname(), pid=os.getpid(),
               started_at=now)


def looks_dead(host: str, pid: int, seen: datetime, now: datetime, *,
               host_here: str | None = None) -> bool:
    """Whether a `running` record belongs to a dead pass: one on this host whose process is
    gone, or one not seen alive for RUN_STALE."""
    here = socket.gethostname() if host_here is None else host_here
    return (host == here and not pid_alive(pid)) or seen < now - RUN_STALE

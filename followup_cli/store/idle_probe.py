"""The idle fast path of `run-due`, on the raw DB-API driver.

Cron starts `run-due` every minute and most passes find nothing to do. Importing SQLAlchemy
costs such a process about 170 ms, more than everything else it does, so an idle pass is
decided and recorded here with psycopg2 or sqlite3 alone: check the schema revision, ask
whether anything is due or held by an expired lease, whether a dead pass left its run
record open, and if none of that, write the same run record the full pass writes. Anything
else (work to do, an unexpected schema, any error) answers "not idle" and the caller takes
the full path, which reports problems properly.

Times are the database's clock on PostgreSQL (now()), like the full pass's.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from followup_cli.db.connect import pg_connect_params, pg_plain_dsn, rolled_back, sqlite_path
from followup_cli.timeutil import sqlite_text, utc_stamp

# Status literals, not parameters: SQLite's planner then uses the partial indexes.
DUE_OR_EXPIRED = (
    "SELECT EXISTS (SELECT 1 FROM scheduled_followups"
    " WHERE status = 'pending' AND next_attempt_at <= {now})"
    " OR EXISTS (SELECT 1 FROM scheduled_followups"
    " WHERE status = 'processing' AND locked_until < {now})"
)
OPEN_RUNS = (
    "SELECT host, pid, COALESCE(heartbeat_at, started_at), {now} FROM followup_runs"
    " WHERE kind = 'run-due' AND finished_at IS NULL"
)
RECORD_RUN = (
    "INSERT INTO followup_runs (id, kind, host, pid, started_at, finished_at, heartbeat_at,"
    " status, counts) VALUES ({p}, 'run-due', {p}, {p}, {now}, {now}, {now}, 'ok', {counts})"
)


def _connect(url: str, statement_timeout_ms: int, connect_timeout_s: int
             ) -> tuple[Any, str] | None:
    # The same parameters as the full path (followup_cli.db.connect): the URL's own win.
    if url.startswith("postgresql+psycopg2://"):
        import psycopg2

        dsn = pg_plain_dsn(url)
        if dsn is None:
            return None  # a URL libpq would read otherwise: the full path, SQLAlchemy's way
        params = pg_connect_params(url, statement_timeout_ms=statement_timeout_ms,
                                   connect_timeout_s=connect_timeout_s)
        return psycopg2.connect(dsn, **params), "pg"
    path = sqlite_path(url)
    if path is None or "?" in url or not path.is_file():
        return None  # first use: the full path creates and migrates it
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn, "sqlite"


def _schema_usable(cur: Any, p: str, revision: str) -> bool:
    """The full path's verdict (followup_cli.db.compat): the head, or a newer revision
    recorded as compatible with this release. On SQLite, rows another program wrote with
    only the guide's columns are work for the full path, which completes them."""
    from followup_cli.db.compat import RECORD_QUERY, assess
    from followup_cli.db.guide_rows import SQLITE_PROBE

    cur.execute("SELECT version_num FROM alembic_version")
    row = cur.fetchone()
    if row is None:
        return False
    if p == "?":
        cur.execute(SQLITE_PROBE)
        if cur.fetchone() is not None:
            return False
    if row[0] == revision:
        return True

    def lookup(rev: str) -> tuple[str, str] | None:
        cur.execute(RECORD_QUERY.format(p=p), (rev,))
        found = cur.fetchone()
        return None if found is None else (str(found[0]), str(found[1]))

    return assess(str(row[0]), lookup).usable


def record_if_idle(url: str, *, revision: str, run_id: str, counts: dict[str, Any],
                   statement_timeout_ms: int, connect_timeout_s: int,
                   handover: Callable[[Any], None] | None = None) -> bool:
    """Record an idle run-due pass and return True when nothing is due, no lease has
    expired and no dead pass left its record open; return False (writing nothing) in every
    other case. When there is work, a healthy PostgreSQL connection is given to `handover`
    (idle, its transaction rolled back) instead of being closed: the full pass reuses it
    rather than connecting again."""
    try:
        opened = _connect(url, statement_timeout_ms, connect_timeout_s)
    except Exception:
        return False  # the full path connects again and reports the error properly
    if opened is None:
        return False
    conn, kind = opened
    idle = False
    try:
        idle = _probe(conn, kind, revision=revision, run_id=run_id, counts=counts)
        return idle
    except Exception:
        return False
    finally:
        if not idle and handover is not None and kind == "pg" and rolled_back(conn):
            handover(conn)
        else:
            conn.close()


def _probe(conn: Any, kind: str, *, revision: str, run_id: str, counts: dict[str, Any]
           ) -> bool:
    from followup_cli.service.runs import looks_dead

    cur = conn.cursor()
    # PostgreSQL: the database's clock; SQLite lives on this host.
    now_sql, now_args = (("now()", []) if kind == "pg"
                         else ("?", [sqlite_text(datetime.now(UTC))]))
    p, counts_sql = ("%s", "CAST(%s AS jsonb)") if kind == "pg" else ("?", "?")
    if not _schema_usable(cur, p, revision):
        return False
    cur.execute(DUE_OR_EXPIRED.format(now=now_sql), now_args * 2)
    if cur.fetchone()[0]:
        return False
    cur.execute(OPEN_RUNS.format(now=now_sql), now_args)
    for host, pid, seen, db_now in cur.fetchall():
        if looks_dead(host, int(pid), utc_stamp(seen), utc_stamp(db_now)):
            return False  # the full pass closes its record as abandoned
    cur.execute(RECORD_RUN.format(p=p, now=now_sql, counts=counts_sql),
                [run_id, socket.gethostname(), os.getpid(), *(now_args * 3),
                 json.dumps(counts)])
    conn.commit()
    return True

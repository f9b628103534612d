"""Read-only database sessions for `serve`: whatever a bug might try, the connection itself
refuses to write, on top of the read-only role it is meant to run as."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from followup_cli.db.engine import Database


def make_read_only(db: Database) -> None:
    """Every connection `db` opens from now on refuses writes, its raw pool's included.
    Call before its first use."""
    db.read_only_sessions = True

    @event.listens_for(db.engine, "connect")
    def _read_only(dbapi_conn: Any, _record: Any) -> None:
        if db.is_postgres:
            # psycopg2 starts each transaction READ ONLY; a write fails with SQLSTATE 25006.
            dbapi_conn.set_session(readonly=True)
        else:
            dbapi_conn.execute("PRAGMA query_only = ON")

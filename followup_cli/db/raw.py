"""Transactions on the raw psycopg2 driver, for the store's named statements
(store/executor.py): what a booking needs, without importing SQLAlchemy (about 180 ms of a
cold start here, more than the booking's own work).

The connections are made with the same parameters as the engine's (db/connect.py), the
schema is judged by the same rules (db/compat.py), and driver errors become the same
followup errors (db/driver_errors.py). At most POOL_LIMIT are open at once, as with the
engine's pool; two are kept between transactions for a long-lived process (the Python API).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from followup_cli.db.compat import RECORD_QUERY, SchemaState, assess
from followup_cli.db.connect import pg_connect_params, pg_plain_dsn, rolled_back
from followup_cli.db.driver_errors import classify
from followup_cli.errors import DatabaseError
from followup_cli.store.executor import Sql

POOL_LIMIT = 4  # the engine's pool_size + max_overflow
POOL_KEEP = 2
POOL_WAIT_S = 30  # the engine's pool timeout


class RawPool:
    """PostgreSQL connections for raw transactions, made on demand.

    A connection that broke (the server went away, or closed it) may not be alone: the
    others kept idle are dropped with it (a generation count, as SQLAlchemy's pool does), so
    a long-lived process fails one call after a server restart, not one per kept
    connection."""

    def __init__(self, url: str, dsn: str | None = None, *, readonly: bool = False) -> None:
        dsn = dsn or pg_plain_dsn(url)  # the Database has it already
        if dsn is None:
            raise ValueError("not a URL libpq reads as SQLAlchemy does (see pg_plain_dsn)")
        self.url = url
        self.dsn = dsn
        self.readonly = readonly  # every transaction READ ONLY (serve: db/readonly.py)
        self._lock = threading.Lock()
        self._idle: list[tuple[Any, int]] = []  # (connection, generation)
        self._generation = 0
        self._slots = threading.BoundedSemaphore(POOL_LIMIT)

    def _connect(self) -> Any:
        import psycopg2

        try:
            conn = psycopg2.connect(self.dsn, **pg_connect_params(self.url))
            if self.readonly:
                conn.set_session(readonly=True)
            return conn
        except psycopg2.Error as error:
            raise classify(error, None, self.url) from error

    def take_idle(self) -> Any:
        """An idle connection of the current generation, now the caller's; None if none
        is kept (the engine takes one as its first connection: one connect per process)."""
        stale = []
        try:
            with self._lock:
                while self._idle:
                    conn, generation = self._idle.pop()
                    if generation == self._generation and not conn.closed:
                        return conn
                    stale.append(conn)
            return None
        finally:
            for conn in stale:
                conn.close()

    def adopt(self, conn: Any) -> None:
        """Keep `conn` (open, no transaction, made with the same parameters) as idle."""
        with self._lock:
            if len(self._idle) < POOL_KEEP:
                self._idle.append((conn, self._generation))
                return
        conn.close()

    def _give_back(self, conn: Any, generation: int) -> None:
        healthy = not conn.closed and rolled_back(conn)
        dropped = [conn]
        with self._lock:
            if not healthy:
                self._generation += 1
                dropped += [c for c, _ in self._idle]
                self._idle = []
            elif generation == self._generation and len(self._idle) < POOL_KEEP:
                self._idle.append((conn, generation))
                dropped = []
        for stale in dropped:
            stale.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection with no transaction open; given back unless it broke."""
        if not self._slots.acquire(timeout=POOL_WAIT_S):
            raise DatabaseError(f"no free database connection after {POOL_WAIT_S} s "
                                f"({POOL_LIMIT} in use by this process)")
        try:
            with self._lock:
                generation = self._generation
            conn = self.take_idle()
            if conn is None:
                conn = self._connect()
            try:
                yield conn
            finally:
                self._give_back(conn, generation)
        finally:
            self._slots.release()

    def dispose(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    @contextlib.contextmanager
    def transaction(self, ensure_schema: Callable[[Sql], None]) -> Iterator[Sql]:
        """A transaction whose statements run through an executor.Sql; committed on success,
        rolled back on any error, every driver error translated."""
        import psycopg2

        with self.connection() as conn:
            sql = Sql(conn, "postgresql", driver_error=psycopg2.Error,
                      on_error=lambda error, statement: classify(error, statement, self.url))
            ensure_schema(sql)
            yield sql
            try:
                conn.commit()
            except psycopg2.Error as error:
                raise classify(error, "COMMIT", self.url) from error


def schema_state(sql: Sql) -> SchemaState:
    """What this followup makes of the database's revision, read on `sql` (PostgreSQL): the
    same verdict as Database.schema_state, from the same two queries on the hot path."""
    revision: str | None = None
    if sql.text("SELECT to_regclass('alembic_version') IS NOT NULL").scalar():
        found = sql.text("SELECT version_num FROM alembic_version").scalar()
        revision = None if found is None else str(found)

    def lookup(rev: str) -> tuple[str, str] | None:
        if not sql.text("SELECT to_regclass('followup_schema_versions') IS NOT NULL").scalar():
            return None
        row = sql.text(RECORD_QUERY.format(p="%s"), (rev,)).first()
        return None if row is None else (str(row[0]), str(row[1]))

    return assess(revision, lookup)

"""Engines and transactions, with driver errors translated into our own at this boundary."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event, exc

from followup_cli.db import (
    CONNECT_TIMEOUT_S,
    SCHEMA_REVISION,
    SQLITE_BUSY_TIMEOUT_MS,
    STATEMENT_TIMEOUT_MS,
)
from followup_cli.errors import DatabaseError, FollowupError, SchemaError
from followup_cli.redact import display_url, scrub

if TYPE_CHECKING:
    from followup_cli.settings import Settings

log = logging.getLogger("followup.db")



def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def translate(error: exc.DBAPIError | exc.SQLAlchemyError, url: str) -> FollowupError:
    """One place that turns driver errors into followup's exceptions."""
    # A driver may quote what it parsed out of the URL (a host holding part of a password).
    message = scrub(_first_line(error))
    where = display_url(url)
    lowered = message.lower()
    missing_object = (
        ("relation" in lowered or "column" in lowered) and "does not exist" in lowered
    ) or "no such table" in lowered or "no such column" in lowered
    if missing_object:
        return SchemaError(
            f"the database schema is missing or outdated ({message}): "
            "run `followup db upgrade`"
        )
    if isinstance(error, exc.OperationalError | exc.InterfaceError):
        if "statement timeout" in lowered or "canceling statement" in lowered:
            return DatabaseError(f"database statement timed out at {where}: {message}")
        return DatabaseError(f"cannot use the database at {where}: {message}")
    return DatabaseError(f"database error at {where}: {message}")


class Database:
    """One per process. Hands out transactions; checks the schema on first use."""

    def __init__(self, url: str, *, auto_migrate: bool | None = None):
        self.url = url
        self.dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
        # The embedded SQLite migrates itself; PostgreSQL waits for `followup db upgrade`.
        self.auto_migrate = self.dialect == "sqlite" if auto_migrate is None else auto_migrate
        self._engine: sa.Engine | None = None
        self._schema_checked = False
        self._clock_offset: timedelta | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(settings.database_url)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> sa.Engine:
        if self.dialect == "postgresql":
            return sa.create_engine(
                self.url,
                connect_args={
                    "application_name": "followup",
                    "connect_timeout": CONNECT_TIMEOUT_S,
                    "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                },
                # execute_batch for UPDATE executemany: one round trip per page, not per row.
                executemany_mode="values_plus_batch",
                pool_size=2,
                max_overflow=2,
                # Bound values (message content, user ids) stay out of error texts and so
                # out of logs, even with --verbose.
                hide_parameters=True,
            )
        path = self.url.removeprefix("sqlite:///")
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(self.url, hide_parameters=True,
                                  connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from pysqlite so BEGIN IMMEDIATE is ours to issue.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            # Writers take the write lock up front: check-then-insert rules are serialized
            # instead of failing with SQLITE_BUSY on upgrade from a read lock.
            mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except exc.SQLAlchemyError as error:
            raise translate(error, self.url) from error

    @contextlib.contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[sa.Connection]:
        """A transaction, committed on success; every driver error comes out translated."""
        self.ensure_schema()
        with self.errors(), self.engine.connect() as conn:
            if readonly and self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                yield conn

    def ensure_schema(self) -> None:
        if self._schema_checked:
            return
        current = self.current_revision()
        if current != SCHEMA_REVISION:
            if not self.auto_migrate:
                found = "no schema" if current is None else f"schema revision {current}"
                raise SchemaError(
                    f"{display_url(self.url)} has {found}, this followup needs "
                    f"{SCHEMA_REVISION}: run `followup db upgrade`"
                )
            from followup_cli.db.migrate import upgrade

            upgrade(self)
        self._schema_checked = True

    def current_revision(self) -> str | None:
        """The Alembic revision, None for an empty database: one query on the hot path."""
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(sqlite_begin="DEFERRED")
                with conn.begin():
                    row = conn.execute(
                        sa.text("SELECT version_num FROM alembic_version")).first()
        except exc.SQLAlchemyError as error:
            translated = translate(error, self.url)
            if isinstance(translated, SchemaError):  # no alembic_version table yet
                return None
            raise translated from error
        return None if row is None else str(row[0])

    def analyze(self, table: str) -> None:
        """Fresh planner statistics after a bulk write (autovacuum may be off). A role that
        does not own the table gets a warning from PostgreSQL, not an error: best effort."""
        with self.transaction() as conn:
            conn.exec_driver_sql(f"ANALYZE {table}")

    def clock_offset(self) -> timedelta:
        """How far the database's clock is ahead of this host's, measured once (to within
        half a round trip). SQLite lives on this host: zero. A database that cannot be
        reached gives zero for now (not remembered): the operation that wanted the time
        fails on its own first statement and reports that properly."""
        if self._clock_offset is None:
            if not self.is_postgres:
                self._clock_offset = timedelta(0)
                return self._clock_offset
            try:
                with self.engine.connect() as conn:
                    before = time.time()
                    db_now: datetime = conn.exec_driver_sql(
                        "SELECT clock_timestamp()").scalar_one()
                    after = time.time()
                    conn.rollback()
            except exc.SQLAlchemyError:
                return timedelta(0)
            self._clock_offset = db_now - datetime.fromtimestamp((before + after) / 2, UTC)
        return self._clock_offset

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

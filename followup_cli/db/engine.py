"""Engines and transactions, with driver errors translated into our own at this boundary.

SQLAlchemy is imported when an engine is first needed, not with this module: a booking on
PostgreSQL runs its statements on the raw driver (`Database.statements`, db/raw.py) and
never loads it."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from followup_cli.db import SQLITE_BUSY_TIMEOUT_MS, guide_rows
from followup_cli.db.compat import RECORD_QUERY, Record, SchemaState, assess
from followup_cli.db.connect import (
    pg_connect_params,
    pg_plain_dsn,
    prepare_sqlite_file,
    sqlite_path,
    sqlite_url,
)
from followup_cli.db.driver_errors import classify
from followup_cli.errors import FollowupError, SchemaError

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy import exc

    from followup_cli.db.raw import RawPool
    from followup_cli.settings import Settings
    from followup_cli.store.executor import Sql

log = logging.getLogger("followup.db")


def translate(error: exc.SQLAlchemyError, url: str) -> FollowupError:
    """One place that turns driver errors into followup's exceptions (by SQLSTATE and
    exception type: see `followup_cli.db.driver_errors`)."""
    orig = getattr(error, "orig", None)
    if orig is None:
        orig = error
    return classify(orig, getattr(error, "statement", None), url)


def _ahead_of_this_host(read_clock: Callable[[], datetime]) -> timedelta:
    """How far the clock `read_clock` reads is ahead of this host's, taken at the midpoint
    of the round trip (so to within half of it)."""
    before = time.time()
    db_now = read_clock()
    after = time.time()
    return db_now - datetime.fromtimestamp((before + after) / 2, UTC)


def _clock_on(cursor: Any) -> datetime:
    cursor.execute("SELECT clock_timestamp()")
    stamp: datetime = cursor.fetchone()[0]
    return stamp


class Database:
    """One per process. Hands out transactions; checks the schema on first use.

    `create=False` (read-only commands at an explicit DATABASE_URL): a missing SQLite file
    is an error naming it, never created.
    """

    def __init__(self, url: str, *, auto_migrate: bool | None = None, create: bool = True):
        self.url = url
        self.dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
        # The embedded SQLite migrates itself; PostgreSQL waits for `followup db upgrade`.
        self.auto_migrate = self.dialect == "sqlite" if auto_migrate is None else auto_migrate
        self.create = create
        self._engine: sa.Engine | None = None
        self._schema_checked = False
        self._clock_offset: timedelta | None = None
        self._spare: Any = None  # see adopt()
        self._raw: RawPool | None = None  # see statements()
        # The URL as libpq takes it, when it reads it as SQLAlchemy does (else no raw path).
        self._raw_dsn = pg_plain_dsn(url) if self.dialect == "postgresql" else None
        self._raw_lock = threading.Lock()
        self.read_only_sessions = False  # set by db/readonly.make_read_only, before first use

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = True) -> Database:
        # A database it may not create, it may not migrate either (read-only commands).
        return cls(settings.database_url, create=create, auto_migrate=None if create else False)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> sa.Engine:
        import sqlalchemy as sa
        from sqlalchemy import event

        if self.dialect == "postgresql":
            pg = sa.create_engine(
                self.url,
                # Only what the URL leaves unset; its own options are kept.
                connect_args=pg_connect_params(self.url),
                # execute_batch for UPDATE executemany: one round trip per page, not per row.
                executemany_mode="values_plus_batch",
                pool_size=2,
                max_overflow=2,
                # Bound values (message content, user ids) stay out of error texts and so
                # out of logs, even with --verbose.
                hide_parameters=True,
            )

            @event.listens_for(pg, "do_connect")
            def _adopted(_dialect: Any, _record: Any, _cargs: Any, _cparams: Any) -> Any:
                # The idle probe's connection first (see adopt), or one the raw path keeps
                # (the clock was read on it), then new ones as usual.
                spare, self._spare = self._spare, None
                if (spare is None or spare.closed) and self._raw is not None:
                    spare = self._raw.take_idle()
                return spare if spare is not None and not spare.closed else None

            return pg
        path = sqlite_path(self.url)
        if path is not None:
            prepare_sqlite_file(path, create=self.create)
        engine = sa.create_engine(sqlite_url(self.url), hide_parameters=True,
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

    def adopt(self, dbapi_conn: Any) -> None:
        """Use this open DB-API connection (the idle probe's) as the first of the pool: the
        raw one's when statements run there, else the engine's."""
        if self._raw_dsn is not None:
            self._raw_pool().adopt(dbapi_conn)
        else:
            self._spare = dbapi_conn

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        from sqlalchemy import exc

        try:
            yield
        except exc.SQLAlchemyError as error:
            raise translate(error, self.url) from error

    @contextlib.contextmanager
    def statements(self, *, readonly: bool = False) -> Iterator[Sql]:
        """A transaction for the store's named statements (store/executor.py), committed on
        success, every driver error translated. On PostgreSQL they run on the raw driver
        and SQLAlchemy is never imported for them (a cold booking's largest cost); on
        SQLite, inside an ordinary transaction (which also completes rows another program
        wrote, and migrates the embedded database), as on PostgreSQL at a URL that libpq
        would not read as SQLAlchemy does (`readonly`: SQLite begins DEFERRED)."""
        if self._raw_dsn is None:
            from followup_cli.store.executor import of

            with self.transaction(readonly=readonly) as conn:
                yield of(conn)
            return
        with self._raw_pool().transaction(self._ensure_schema_raw) as sql:
            yield sql

    def _raw_pool(self) -> RawPool:
        with self._raw_lock:  # threads of one process share one pool
            if self._raw is None:
                from followup_cli.db.raw import RawPool

                self._raw = RawPool(self.url, self._raw_dsn, readonly=self.read_only_sessions)
            return self._raw

    def _ensure_schema_raw(self, sql: Sql) -> None:
        """ensure_schema's verdict, read on the raw connection; anything but a usable
        schema goes to ensure_schema itself (which refuses, or migrates)."""
        if self._schema_checked:
            return
        from followup_cli.db.raw import schema_state

        state = schema_state(sql)
        if not state.usable:
            self.ensure_schema()
            return
        if state.newer:
            log.info("%s", state.problem(self.url))
        self._schema_checked = True

    @contextlib.contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[sa.Connection]:
        """A transaction, committed on success; every driver error comes out translated."""
        self.ensure_schema()
        with self.errors(), self.engine.connect() as conn:
            if readonly and self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                if self.dialect == "sqlite" and not readonly:
                    # Rows another program wrote with only the guide's columns (PostgreSQL
                    # completes them in a trigger; see followup_cli/db/guide_rows.py).
                    guide_rows.complete_rows(conn)
                yield conn

    def ensure_schema(self) -> None:
        """Accept the head revision, or a newer one that declares itself compatible with
        this release; migrate an older SQLite; refuse everything else (exit 4)."""
        if self._schema_checked:
            return
        state = self.schema_state()
        if not state.usable:
            if not (state.upgradable and self.auto_migrate):
                raise SchemaError(state.problem(self.url))
            from followup_cli.db.migrate import upgrade

            upgrade(self)
        elif state.newer:
            log.info("%s", state.problem(self.url))
        self._schema_checked = True

    def schema_state(self) -> SchemaState:
        """What this followup makes of the database's revision: one query on the hot path
        (two when the revision is newer than this followup knows)."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(sqlite_begin="DEFERRED")
                with conn.begin():
                    revision = self._revision(conn)

                    def lookup(rev: str) -> Record | None:
                        return self._record(conn, rev)

                    return assess(revision, lookup)
        except SQLAlchemyError as error:
            raise translate(error, self.url) from error

    def current_revision(self) -> str | None:
        """The Alembic revision, None for an empty database."""
        return self.schema_state().revision

    def _revision(self, conn: sa.Connection) -> str | None:
        import sqlalchemy as sa

        if not self._has_table(conn, "alembic_version"):
            return None
        row = conn.execute(sa.text("SELECT version_num FROM alembic_version")).first()
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
            if self._engine is None and self._spare is None and self._raw_dsn is not None:
                return self._raw_clock_offset()
            from sqlalchemy import exc

            try:
                with self.engine.connect() as conn:
                    self.learn_clock(conn)
                    conn.rollback()
            except exc.SQLAlchemyError:
                return timedelta(0)
        return self._clock_offset or timedelta(0)

    def learn_clock(self, conn: Any) -> None:
        """Measure the clock offset on `conn`, a transaction the caller has open anyway (a
        raw executor or a SQLAlchemy connection), unless it is known: no connection of its
        own for it, so a server that does not answer costs one connect timeout, not two."""
        if self._clock_offset is not None or not self.is_postgres:
            return
        sql = "SELECT clock_timestamp()"
        if hasattr(conn, "exec_driver_sql"):  # SQLAlchemy
            self._clock_offset = _ahead_of_this_host(
                lambda: conn.exec_driver_sql(sql).scalar_one())
        else:
            self._clock_offset = _ahead_of_this_host(lambda: conn.text(sql).scalar())

    def _raw_clock_offset(self) -> timedelta:
        """clock_offset on a raw connection (kept for the transaction that follows), in a
        process that has not needed SQLAlchemy so far."""
        import psycopg2

        for _ in range(2):
            try:
                with self._raw_pool().connection() as conn, conn.cursor() as cursor:
                    offset = _ahead_of_this_host(lambda: _clock_on(cursor))
            except psycopg2.Error:
                continue  # a kept connection the server dropped: once more, on a new one
            except Exception:
                break  # no connection at all: not twice the connect timeout
            self._clock_offset = offset
            return offset
        return timedelta(0)  # as below: the operation's own statement reports it

    def _record(self, conn: sa.Connection, revision: str) -> Record | None:
        import sqlalchemy as sa

        if not self._has_table(conn, "followup_schema_versions"):
            return None
        row = conn.execute(sa.text(RECORD_QUERY.format(p=":r")), {"r": revision}).first()
        return None if row is None else (str(row[0]), str(row[1]))

    def _has_table(self, conn: sa.Connection, name: str) -> bool:
        # A catalog lookup, not a failing SELECT: on PostgreSQL a failed statement would
        # abort the transaction this check shares.
        import sqlalchemy as sa

        if self.is_postgres:
            query = "SELECT to_regclass(:name) IS NOT NULL"
        else:
            query = ("SELECT EXISTS (SELECT 1 FROM sqlite_master"
                     " WHERE type = 'table' AND name = :name)")
        return bool(conn.execute(sa.text(query), {"name": name}).scalar())

    def dispose(self) -> None:
        if self._raw is not None:
            self._raw.dispose()
            self._raw = None
        if self._spare is not None:  # handed over but never used
            self._spare.close()
            self._spare = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

"""Runs the store's named statements (store/sql_text.py, compiled from store/statements.py)
on a DB-API connection: the raw driver's own (the booking path on PostgreSQL, which then
never imports SQLAlchemy) or the one under a SQLAlchemy connection, inside its transaction.

Driver errors come out as the caller's form expects them: followup's own errors on the raw
path (db/driver_errors.py), SQLAlchemy's DBAPIError under a SQLAlchemy connection, which
Database.errors() translates the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from followup_cli.store import sql_text
from followup_cli.timeutil import as_utc as as_utc  # re-exported for the store modules
from followup_cli.timeutil import sqlite_text

ErrorHook = Callable[[Exception, str], BaseException]

# Called with each statement's text before it runs (tests count what a booking sends:
# SQLAlchemy's own events do not see these statements).
listeners: list[Callable[[str], None]] = []


def document(value: Any) -> Any:
    """A JSON column read back on a raw connection, as JSONDocument reads it: psycopg2
    decodes json and jsonb itself; sqlite3 gives the stored text."""
    return json.loads(value) if isinstance(value, str) else value


class Result:
    """What a statement returned: every row (the named statements return few) and the
    driver's rowcount (-1 where sqlite3 cannot tell, for a statement beginning with WITH)."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


class Sql:
    """One transaction's statements, run by name on `dbapi_conn` (which the caller begins,
    commits and closes)."""

    def __init__(self, dbapi_conn: Any, dialect: str, *, driver_error: type[Exception],
                 on_error: ErrorHook) -> None:
        self.dbapi_conn = dbapi_conn
        self.dialect = dialect
        self._texts = sql_text.POSTGRESQL if dialect == "postgresql" else sql_text.SQLITE
        self._driver_error = driver_error
        self._on_error = on_error

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def has(self, name: str) -> bool:
        """Whether the statement exists on this dialect (some are PostgreSQL's only)."""
        return name in self._texts

    def run(self, name: str, *, after: str | None = None, **params: Any) -> Result:
        """Run `name`; with `after`, the statement of that name (parameterless settings,
        such as SET LOCAL) first, in the same round trip: the rows are `name`'s."""
        text, defaults = self._texts[name]
        if after is not None:
            text = f"{self._texts[after][0]}; {text}"
        return self._execute(text, self._adapt({**defaults, **params}))

    def run_many(self, name: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """One executemany; returns the rows it changed (sqlite3 sums them; psycopg2 runs
        each row on its own round trip, so PostgreSQL's callers send arrays instead)."""
        text, defaults = self._texts[name]
        for listener in listeners:
            listener(text)
        cursor = None
        try:
            cursor = self.dbapi_conn.cursor()
            cursor.executemany(text, (self._adapt({**defaults, **row}) for row in rows))
            return int(cursor.rowcount)
        except self._driver_error as error:
            raise self._on_error(error, text) from error
        finally:
            if cursor is not None:
                cursor.close()

    def text(self, statement: str, params: Any = None) -> Result:
        """A statement written in the store as text (PostgreSQL settings, ANALYZE)."""
        return self._execute(statement, params)

    def copy(self, statement: str, source: Any, size: int) -> None:
        """COPY ... FROM STDIN, reading `source` (PostgreSQL)."""
        for listener in listeners:
            listener(statement)
        cursor = None
        try:
            cursor = self.dbapi_conn.cursor()
            cursor.copy_expert(statement, source, size=size)
        except self._driver_error as error:
            raise self._on_error(error, statement) from error
        finally:
            if cursor is not None:
                cursor.close()

    def _execute(self, statement: str, params: Any) -> Result:
        for listener in listeners:
            listener(statement)
        cursor = None
        try:
            cursor = self.dbapi_conn.cursor()
            if params is None:
                cursor.execute(statement)
            else:
                cursor.execute(statement, params)
            rows = cursor.fetchall() if cursor.description is not None else []
            return Result(rows, cursor.rowcount)
        except self._driver_error as error:
            raise self._on_error(error, statement) from error
        finally:
            if cursor is not None:
                cursor.close()

    def _adapt(self, params: dict[str, Any]) -> dict[str, Any]:
        # What UTCDateTime does for SQLAlchemy: an instant or nothing (a naive datetime
        # would be read in the session's or the host's zone), stored as UTC text on SQLite.
        # JSON columns are encoded by the caller, who knows which they are.
        for key, value in params.items():
            if isinstance(value, datetime):
                if value.tzinfo is None:
                    raise ValueError(f"naive datetime given to the database layer ({key})")
                if self.dialect == "sqlite":
                    params[key] = sqlite_text(value)
        return params


def of(conn: Any) -> Sql:
    """The statements of `conn`: an Sql as it is, or a SQLAlchemy Connection's DB-API
    connection (its transaction: what runs here commits or rolls back with it)."""
    if isinstance(conn, Sql):
        return conn
    driver_error = conn.dialect.loaded_dbapi.Error

    def as_sqlalchemys(error: Exception, statement: str) -> BaseException:
        import sqlalchemy as sa  # loaded already: the caller holds a SQLAlchemy connection

        # The subclass SQLAlchemy itself would raise (OperationalError, IntegrityError...).
        return sa.exc.DBAPIError.instance(statement, None, error, driver_error)

    return Sql(conn.connection.dbapi_connection, conn.dialect.name,
               driver_error=driver_error, on_error=as_sqlalchemys)

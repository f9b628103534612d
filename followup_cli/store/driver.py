"""The raw DB-API cursor of a SQLAlchemy connection, for the few statements where
SQLAlchemy's per-row processing costs more than the statement (the delivery claim, COPY).
Driver errors are wrapped as SQLAlchemy's, so Database.errors() translates them as usual."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa


@contextlib.contextmanager
def raw_cursor(conn: sa.Connection, statement: str) -> Iterator[Any]:
    """A cursor on the connection's own DB-API connection (so it shares its transaction);
    `statement` names what runs on it in a translated error."""
    dbapi_conn: Any = conn.connection.dbapi_connection
    cursor = dbapi_conn.cursor()
    try:
        yield cursor
    except conn.dialect.loaded_dbapi.Error as error:
        raise sa.exc.DBAPIError(statement, None, error) from error
    finally:
        cursor.close()

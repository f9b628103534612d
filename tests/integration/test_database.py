"""The database boundary: connection settings, error translation, SQLite pragmas."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from followup_cli.db.engine import Database
from followup_cli.errors import DatabaseError, SchemaError
from followup_cli.settings import normalize_database_url


@pytest.mark.postgres
def test_postgres_connections_are_named_and_time_limited(pg_url: str) -> None:
    db = Database(normalize_database_url(pg_url))
    try:
        with db.transaction(readonly=True) as conn:
            name, timeout = conn.execute(sa.text(
                "SELECT current_setting('application_name'), "
                "current_setting('statement_timeout')")).one()
        assert (name, timeout) == ("followup", "30s")
    finally:
        db.dispose()


@pytest.mark.postgres
def test_a_stuck_statement_fails_instead_of_hanging(pg_url: str) -> None:
    db = Database(normalize_database_url(pg_url))
    try:
        with pytest.raises(DatabaseError, match="timed out"), db.transaction() as conn:
            conn.execute(sa.text("SET LOCAL statement_timeout = '200ms'"))
            conn.execute(sa.text("SELECT pg_sleep(2)"))
    finally:
        db.dispose()


def test_sqlite_uses_wal_and_foreign_keys(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        with db.transaction(readonly=True) as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.dispose()


def test_missing_table_is_a_schema_error(db_url: str) -> None:
    db = Database(normalize_database_url(db_url))
    try:
        with pytest.raises(SchemaError, match="followup db upgrade"), db.transaction() as conn:
            conn.execute(sa.text("SELECT * FROM no_such_table_here"))
    finally:
        db.dispose()


def test_failed_transaction_writes_nothing(db_url: str) -> None:
    db = Database(normalize_database_url(db_url))
    try:
        with pytest.raises(RuntimeError), db.transaction() as conn:
            conn.execute(sa.text(
                "INSERT INTO ai_conversations (id, user_id, created_at) "
                "VALUES ('c', 'u', CURRENT_TIMESTAMP)"))
            raise RuntimeError("boom")
        with db.transaction(readonly=True) as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM ai_conversations")).scalar() == 0
    finally:
        db.dispose()

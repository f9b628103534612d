"""The database boundary: connection settings, error translation, SQLite pragmas."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from followup_cli.db import CONNECT_TIMEOUT_S, STATEMENT_TIMEOUT_MS
from followup_cli.db.engine import Database
from followup_cli.errors import DatabaseError, SchemaError
from followup_cli.settings import normalize_database_url
from followup_cli.store import idle_probe

SHOW = ("SELECT current_setting('application_name'), current_setting('search_path'), "
        "current_setting('statement_timeout'), current_setting('lock_timeout')")


def _settings_via_engine(url: str) -> tuple[Any, ...]:
    db = Database(normalize_database_url(url))
    try:
        with db.transaction(readonly=True) as conn:
            return tuple(conn.execute(sa.text(SHOW)).one())
    finally:
        db.dispose()


def _settings_via_idle_probe(url: str) -> tuple[Any, ...]:
    opened = idle_probe._connect(normalize_database_url(url), STATEMENT_TIMEOUT_MS,
                                 CONNECT_TIMEOUT_S)
    assert opened is not None
    conn, _kind = opened
    try:
        cur = conn.cursor()
        cur.execute(SHOW)
        return tuple(cur.fetchone())
    finally:
        conn.close()


@pytest.mark.postgres
@pytest.mark.parametrize("connect", [_settings_via_engine, _settings_via_idle_probe],
                         ids=["engine", "idle-probe"])
def test_postgres_connections_are_named_and_time_limited(pg_url: str, connect) -> None:
    assert connect(pg_url) == ("followup", '"$user", public', "30s", "5s")


@pytest.mark.postgres
@pytest.mark.parametrize("connect", [_settings_via_engine, _settings_via_idle_probe],
                         ids=["engine", "idle-probe"])
def test_the_urls_own_settings_win(pg_url: str, connect) -> None:
    """Before, both paths overwrote these with followup's own (application_name=followup,
    options=-c statement_timeout=30000 only)."""
    options = quote("-c search_path=billing,public -c lock_timeout=1500")
    url = f"{pg_url}?application_name=billing-cron&options={options}"
    assert connect(url) == ("billing-cron", "billing,public", "30s", "1500ms")


@pytest.mark.postgres
def test_libpq_environment_is_respected(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGAPPNAME", "from-env")
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=12s")
    assert _settings_via_engine(pg_url) == ("from-env", '"$user", public', "12s", "5s")


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

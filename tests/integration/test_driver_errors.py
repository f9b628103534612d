"""Database errors from a real server become followup's errors by SQLSTATE, whatever
language the server speaks, and the CLI reports each in one line with exit 4.

Before, `db/engine.py` matched English message text ("relation ... does not exist",
"canceling statement"): a server session with `lc_messages` in German reported a missing
table as a generic database error, so the "run `followup db upgrade`" advice was lost;
a lock timeout, a refused privilege and a read-only session were all "database error".
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from followup_cli.cli.app import app
from followup_cli.db.engine import Database
from followup_cli.errors import DatabaseError, LockedError, SchemaError
from followup_cli.settings import normalize_database_url
from tests.conftest import PostgresServer

runner = CliRunner()
GERMAN = "de_DE.UTF-8"
POST = ["schedule", "post-event", "--user-id", "u1", "--conversation-id", "c1",
        "--event-date", "2026-11-14T18:00"]


def with_options(url: str, options: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options={quote(options)}"


def run(url: str, *args: str) -> Any:
    return runner.invoke(app, list(args), env={"DATABASE_URL": url})


def one_line(result: Any, needle: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.output
    return str(lines[0])


@pytest.fixture
def german_url(pg_url: str) -> str:
    """A URL whose sessions speak German (lc_messages is a superuser setting, and the
    test role is one). Needs the locale on the server's machine: .ci/run generates it."""
    url = with_options(pg_url, f"-c lc_messages={GERMAN}")
    try:
        conn = psycopg2.connect(url, connect_timeout=5)
    except psycopg2.OperationalError as error:
        pytest.skip(f"the PostgreSQL server cannot use locale {GERMAN} ({error}); generate "
                    f"it with `localedef --no-archive -i de_DE -f UTF-8 {GERMAN}` as .ci/run "
                    "does (a locale-archive entry made after the server started is not seen)")
    try:
        cur = conn.cursor()
        try:
            cur.execute("SELECT * FROM no_such_table_here")
        except psycopg2.Error as error:
            if "does not exist" in str(error):
                pytest.skip("the server has no German message catalog (postgres-*.mo)")
    finally:
        conn.close()
    return url


@pytest.mark.postgres
def test_a_german_server_session_is_classified_by_sqlstate(german_url: str) -> None:
    db = Database(normalize_database_url(german_url))
    try:
        with pytest.raises(SchemaError, match="followup db upgrade") as missing_table, \
                db.transaction() as conn:
            conn.execute(sa.text("SELECT * FROM no_such_table_here"))
        assert "existiert nicht" in str(missing_table.value)  # the server's own words
        with pytest.raises(SchemaError, match="followup db upgrade"), db.transaction() as conn:
            conn.execute(sa.text("SELECT no_such_column FROM scheduled_followups"))
        with pytest.raises(DatabaseError, match="timed out"), db.transaction() as conn:
            conn.execute(sa.text("SET LOCAL statement_timeout = '100ms'"))
            conn.execute(sa.text("SELECT pg_sleep(2)"))
    finally:
        db.dispose()


@pytest.mark.postgres
def test_a_locked_row_fails_in_one_line_after_the_lock_timeout(pg_url: str,
                                                              german_url: str) -> None:
    """DESIGN: a row locked by another session never stalls a command for more than a
    few seconds; it fails cleanly, exit 4, one line. (Here the URL shortens the wait.)"""
    created = run(pg_url, *POST, "--json")
    assert created.exit_code == 0, created.output
    fid = created.stdout.split('"id": "')[1].split('"')[0]
    holder = psycopg2.connect(pg_url)
    try:
        holder.cursor().execute("SELECT 1 FROM scheduled_followups WHERE id = %s FOR UPDATE",
                                (fid,))
        url = with_options(german_url, "-c lock_timeout=300")
        result = run(url, "cancel", fid)
        assert result.exit_code == 4, result.output
        one_line(result, "a row is locked by another session")
        db = Database(normalize_database_url(url))
        try:
            with pytest.raises(LockedError), db.transaction() as conn:
                conn.execute(sa.text("UPDATE scheduled_followups SET retry_count = 1 "
                                     "WHERE id = :id"), {"id": fid})
        finally:
            db.dispose()
    finally:
        holder.close()
    assert run(pg_url, "cancel", fid).exit_code == 0  # released: it goes through


@pytest.fixture
def reader_url(pg_url: str, pg_server: PostgresServer) -> Iterator[str]:
    """A login role that may read every table and write none (like a monitor role)."""
    role = f"followup_reader_{uuid.uuid4().hex[:10]}"
    dbname = pg_url.rsplit("/", 1)[1]
    admin = sa.create_engine(normalize_database_url(pg_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f'GRANT CONNECT ON DATABASE "{dbname}" TO {role}')
        conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    yield pg_url.replace("postgres@", f"{role}@", 1)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP OWNED BY {role}")
        conn.exec_driver_sql(f'REVOKE CONNECT ON DATABASE "{dbname}" FROM {role}')
    admin.dispose()
    with pg_server.admin.connect() as conn:
        conn.exec_driver_sql(f"DROP ROLE {role}")


@pytest.mark.postgres
def test_a_refused_privilege_names_the_operation(reader_url: str) -> None:
    result = run(reader_url, *POST)
    assert result.exit_code == 4, result.output
    line = one_line(result, "refused INSERT on ")
    assert "lacks the privilege" in line
    # reading is allowed: the monitor's commands work
    assert run(reader_url, "list", "--json").exit_code == 0
    assert run(reader_url, "db", "current").exit_code == 0


@pytest.mark.postgres
def test_a_read_only_session_says_so(pg_url: str) -> None:
    url = with_options(pg_url, "-c default_transaction_read_only=on")
    result = run(url, *POST)
    assert result.exit_code == 4, result.output
    one_line(result, "read-only")
    assert run(url, "list").exit_code == 0


@pytest.mark.postgres
@pytest.mark.parametrize("url", [
    "postgresql://postgres@127.0.0.1:1/postgres",
    "postgresql://postgres@127.0.0.1:5432/followup_no_such_database",
    "postgresql://followup_no_such_role:pw@127.0.0.1:5432/postgres",
], ids=["refused", "unknown-database", "unknown-role"])
def test_connection_failures_are_exit_4_in_one_line(url: str) -> None:
    result = run(url, "health")
    assert result.exit_code == 4, result.output
    line = one_line(result, "cannot use the database")
    assert ":pw@" not in line


def test_sqlite_busy_is_a_locked_error(sqlite_url: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("followup_cli.db.engine.SQLITE_BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    db = Database(sqlite_url)
    try:
        with pytest.raises(LockedError, match="locked by another session"), db.transaction():
            pass
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        db.dispose()


def test_sqlite_read_only_file_says_so(sqlite_url: str) -> None:
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    db = Database(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        with pytest.raises(DatabaseError, match="read-only"), db.transaction() as conn:
            conn.execute(sa.text("DELETE FROM ai_messages"))
    finally:
        db.dispose()

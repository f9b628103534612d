"""Driver errors are classified by SQLSTATE / SQLite error name, never by message text.

The messages below are deliberately not English: classification must not look at them.
Real-server cases (a German `lc_messages` session, locks, privileges, read-only sessions)
are in tests/integration/test_driver_errors.py; this table covers every class, including
the ones a test server cannot produce on demand (3D000 and 28xxx come at connect time,
where psycopg2 has no SQLSTATE).
"""

from __future__ import annotations

import sqlite3

import pytest

from followup_cli.db.driver_errors import classify, operation
from followup_cli.errors import DatabaseError, ExitCode, LockedError, SchemaError

URL = "postgresql+psycopg2://app:secret@db:5432/app"


class FakePgError(Exception):
    """Stands in for a psycopg2 error: only `pgcode` is read."""

    def __init__(self, pgcode: str | None, text: str = "FEHLER: etwas ging schief"):
        super().__init__(text)
        self.pgcode = pgcode


FakePgError.__module__ = "psycopg2.errors"

CASES = [
    ("42P01", SchemaError, "followup db upgrade"),
    ("42703", SchemaError, "followup db upgrade"),
    ("42883", SchemaError, "followup db upgrade"),
    ("55P03", LockedError, "a row is locked by another session"),
    ("57014", DatabaseError, "timed out"),
    ("42501", DatabaseError, "refused UPDATE on scheduled_followups"),
    ("25006", DatabaseError, "read-only"),
    ("3D000", DatabaseError, "does not exist"),
    ("28P01", DatabaseError, "refused the login"),
    ("28000", DatabaseError, "refused the login"),
    ("08006", DatabaseError, "cannot use the database"),
    ("57P01", DatabaseError, "cannot use the database"),
    ("53300", DatabaseError, "out of resources"),
    ("40P01", DatabaseError, "try again"),
    ("23505", DatabaseError, "SQLSTATE 23505"),
    (None, DatabaseError, "cannot use the database"),  # libpq failed to connect
]


@pytest.mark.parametrize(("code", "kind", "needle"), CASES, ids=[str(c[0]) for c in CASES])
def test_postgres_codes(code: str | None, kind: type, needle: str) -> None:
    error = classify(FakePgError(code), "UPDATE scheduled_followups SET status = %(s)s", URL)
    assert type(error) is kind
    assert needle in str(error)
    assert error.exit_code == ExitCode.DATABASE
    assert "secret" not in str(error) and "\n" not in str(error)


class FakeSqliteError(sqlite3.OperationalError):
    def __init__(self, name: str, text: str):
        super().__init__(text)
        self.sqlite_errorname = name


SQLITE_CASES = [
    ("SQLITE_ERROR", "no such table: scheduled_followups", SchemaError, "followup db upgrade"),
    ("SQLITE_ERROR", "no such column: event_at", SchemaError, "followup db upgrade"),
    ("SQLITE_BUSY", "database is locked", LockedError, "locked by another session"),
    ("SQLITE_READONLY", "attempt to write a readonly database", DatabaseError, "read-only"),
    ("SQLITE_CANTOPEN", "unable to open database file", DatabaseError, "cannot open"),
    ("SQLITE_NOTADB", "file is not a database", DatabaseError, "not a usable SQLite"),
    ("SQLITE_ERROR", "near \"x\": syntax error", DatabaseError, "SQLITE_ERROR"),
]


@pytest.mark.parametrize(("name", "text", "kind", "needle"), SQLITE_CASES,
                         ids=[c[1][:20] for c in SQLITE_CASES])
def test_sqlite_names(name: str, text: str, kind: type, needle: str) -> None:
    error = classify(FakeSqliteError(name, text), "INSERT INTO x VALUES (?)", "sqlite:///f.db")
    assert type(error) is kind
    assert needle in str(error)


def test_operation_names_verb_and_table_only() -> None:
    assert operation("INSERT INTO scheduled_followups (id) VALUES (%(id)s)") == (
        "INSERT on scheduled_followups")
    assert operation("select id from followup_runs where x = 1") == "SELECT on followup_runs"
    assert operation('DELETE FROM "ai_messages" WHERE user_id = ?') == "DELETE on ai_messages"
    assert operation("WITH x AS (SELECT 1) UPDATE scheduled_followups SET a = 1") == (
        "UPDATE on scheduled_followups")
    assert operation(None) == "the operation"

"""Driver errors → followup's errors, by SQLSTATE and exception type, never by message text.

PostgreSQL words its messages in the server's `lc_messages`, so English text cannot be
relied on; its SQLSTATE (psycopg2's `pgcode`) can. psycopg2 has no SQLSTATE for a failure
to connect (libpq reports those as text only), so every OperationalError without one is a
connection failure and carries the server's own words. SQLite has error names
(`sqlite_errorname`) and English-only messages: its generic SQLITE_ERROR is told apart by
the message prefix SQLite itself fixes ("no such table", "no such column").

Messages are one line, say what to do, and never carry bound values (message content,
user ids): only the statement's verb and table are named.
"""

from __future__ import annotations

import re

from followup_cli.errors import DatabaseError, FollowupError, LockedError, SchemaError
from followup_cli.redact import display_url, scrub

UPGRADE_HINT = "run `followup db upgrade`"

# SQLSTATEs whose meaning is "the schema is not what this followup expects".
SCHEMA_CODES = {"42P01", "42703", "42883", "42704", "3F000"}


def first_line(error: BaseException) -> str:
    """The driver's own first line, secrets masked: it may quote what it parsed out of the
    URL (a host holding part of a password)."""
    text = str(error).strip().splitlines()
    return scrub(text[0].strip()) if text else type(error).__name__


def operation(statement: str | None) -> str:
    """`INSERT on scheduled_followups` from a statement: verb and first table only."""
    if not statement:
        return "the operation"
    text = " ".join(statement.split())
    verb_match = re.match(r"\s*(\w+)", text)
    verb = verb_match.group(1).upper() if verb_match else "the operation"
    patterns = {
        "INSERT": r"\bINSERT\s+INTO\s+([\w.\"]+)",
        "UPDATE": r"\bUPDATE\s+([\w.\"]+)",
        "DELETE": r"\bDELETE\s+FROM\s+([\w.\"]+)",
        "COPY": r"\bCOPY\s+([\w.\"]+)",
        "TRUNCATE": r"\bTRUNCATE\s+(?:TABLE\s+)?([\w.\"]+)",
    }
    pattern = patterns.get(verb, r"\bFROM\s+([\w.\"]+)")
    if verb == "WITH":  # a CTE: name what the main statement does
        for main, pat in patterns.items():
            found = re.search(pat, text, re.I)
            if found:
                return f"{main} on {found.group(1).strip(chr(34))}"
    table = re.search(pattern, text, re.I)
    return f"{verb} on {table.group(1).strip(chr(34))}" if table else verb


def classify(orig: BaseException | None, statement: str | None, url: str) -> FollowupError:
    """The followup error for a driver exception `orig` raised by `statement`."""
    where = display_url(url)
    if orig is None:
        return DatabaseError(f"database error at {where}")
    code = getattr(orig, "pgcode", None)
    if code is not None or type(orig).__module__.startswith("psycopg2"):
        return _postgres(orig, code, statement, where)
    name = getattr(orig, "sqlite_errorname", None)
    if name is not None:
        return _sqlite(orig, str(name), statement, where)
    return DatabaseError(f"database error at {where}: {first_line(orig)}")


def _postgres(orig: BaseException, code: str | None, statement: str | None,
              where: str) -> FollowupError:
    said = first_line(orig)
    if code is None:
        # No SQLSTATE: libpq failed to connect, or lost the connection.
        return DatabaseError(f"cannot use the database at {where}: {said}")
    if code in SCHEMA_CODES:
        return SchemaError(f"the database schema is missing or outdated ({said}): "
                           f"{UPGRADE_HINT}")
    if code == "55P03":
        return LockedError(
            f"a row is locked by another session at {where}: gave up waiting for it "
            "(lock_timeout); try again in a moment")
    if code == "57014":
        return DatabaseError(f"database statement timed out at {where} (statement_timeout, "
                             "or it was cancelled)")
    if code == "42501":
        return DatabaseError(f"the database at {where} refused {operation(statement)}: this "
                             "role lacks the privilege (grant it, or use a role that has it)")
    if code == "25006":
        return DatabaseError(f"the database at {where} is read-only for this session (a "
                             f"standby, or default_transaction_read_only): {operation(statement)}"
                             " needs a writable primary")
    if code == "3D000":
        return DatabaseError(f"the database named in {where} does not exist: {said}")
    if code.startswith("28"):
        return DatabaseError(f"the database at {where} refused the login: {said}")
    if code.startswith("08") or code in ("57P01", "57P02", "57P03"):
        return DatabaseError(f"cannot use the database at {where}: {said}")
    if code.startswith("53"):
        return DatabaseError(f"the database server at {where} is out of resources "
                             f"(SQLSTATE {code}): {said}")
    if code in ("40001", "40P01"):
        return DatabaseError(f"the database at {where} gave up a transaction that collided "
                             f"with another (SQLSTATE {code}): try again")
    return DatabaseError(f"database error at {where} (SQLSTATE {code}): {said}")


def _sqlite(orig: BaseException, name: str, statement: str | None,
            where: str) -> FollowupError:
    said = first_line(orig)
    if name == "SQLITE_ERROR" and said.startswith(("no such table", "no such column")):
        return SchemaError(f"the database schema is missing or outdated ({said}): "
                           f"{UPGRADE_HINT}")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return LockedError(f"the database at {where} is locked by another session: gave up "
                           "waiting for it; try again in a moment")
    if name.startswith("SQLITE_READONLY"):
        return DatabaseError(f"the database at {where} is read-only for this process (file "
                             f"or directory permissions): {operation(statement)} refused")
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return DatabaseError(f"cannot open the database at {where}: {said}")
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or name.startswith("SQLITE_CORRUPT"):
        return DatabaseError(f"{where} is not a usable SQLite database: {said}")
    if name == "SQLITE_FULL":
        return DatabaseError(f"the disk holding {where} is full")
    return DatabaseError(f"database error at {where} ({name}): {said}")

"""SQL of the one admission path: a staging table, the users' guard rows, and the waves
that apply the rules (db/rules.py) set-based.

Every creator stages its rendered follow-ups in `followup_stage` (a temporary table:
private to the session, emptied at commit), locks its users' guard rows, then runs waves:
1. every undecided staged row that conflicts with the table (duplicate window, inactivity
   period) is decided `duplicate`, with the id it duplicates;
2. the first undecided row of each user (in staging order) is decided `at_cap` or
   `admitted`; admitted rows are written to scheduled_followups.
Rows of one user are thus admitted in staging order, each checked against the table as it
stands after the rows before it: exactly the rules applied one row at a time, in a number
of statements that does not grow with the number of rows (one wave per row of the busiest
user, and a user can only be admitted up to the cap).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from followup_cli.store import sql_text
from followup_cli.store.executor import as_utc, of
from followup_cli.store.stage import (
    STAGE_NAME,
)

FOLLOWUP_COLUMNS = sql_text.FOLLOWUP_COLUMNS

# Every function takes the transaction's connection: an executor.Sql, or a SQLAlchemy
# Connection (whose DB-API connection the statements then run on). The statements
# themselves are in store/statements.py.
Conn = Any


def open_stage(conn: Conn) -> None:
    """Create the session's staging table if this connection has none, and empty it."""
    sql = of(conn)
    sql.run("stage.create")
    if sql.has("stage.clear"):
        sql.run("stage.clear")


def add(conn: Conn, rows: Iterable[dict[str, Any]]) -> int:
    """Stage rows: dicts of scheduled_followups columns plus `seq` (unique, the order of
    admission) and optionally `inactive_before`, every row with the first row's keys.
    PostgreSQL: COPY, taking each row from `rows` only when the server is ready for more;
    SQLite: executemany. Returns how many rows were staged."""
    sql = of(conn)
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return 0
    if sql.is_postgres:
        return copy_rows(sql, STAGE_NAME, list(first), itertools.chain([first], iterator))
    # As SQLAlchemy's JSON type wrote them: every value JSON text (None as 'null').
    absent = dict.fromkeys(sql_text.STAGE_INPUT)
    json_columns = [c for c, kind in sql_text.COLUMN_KINDS[STAGE_NAME].items()
                    if kind == "json" and c in absent]
    batch = []
    for row in itertools.chain([first], iterator):
        staged = {**absent, **row}
        for column in json_columns:
            staged[column] = json.dumps(staged[column])
        batch.append(staged)
    sql.run_many("stage.insert", batch)
    return len(batch)


# The waves' plans need the stage's size and roughly how many users it holds, not fine
# histograms: a sample of 3,000 rows (target 10) instead of 30,000 takes a tenth of the
# time (50 ms against 560 ms for 100,000 staged rows).
STAGE_STATISTICS_TARGET = 10


def analyze(conn: Conn) -> None:
    """Statistics for a large stage, so the waves' joins are planned for its real size."""
    sql = of(conn)
    if sql.is_postgres:
        previous = sql.text("SELECT current_setting('default_statistics_target')").scalar()
        set_target = "SELECT set_config('default_statistics_target', %s, true)"
        sql.text(set_target, (str(STAGE_STATISTICS_TARGET),))
        sql.text(f"ANALYZE {STAGE_NAME}")
        sql.text(set_target, (previous,))  # for the rest of the transaction
    else:
        sql.text(f"ANALYZE {STAGE_NAME}")


# A wave's statements do work in proportion to the stage: the session's statement timeout
# (30 s by default, there to stop a stuck cron pass) is stretched by this much per staged
# row for the rest of the transaction, so a million-row import is not cut off halfway while
# a statement that is truly stuck still ends. lock_timeout is left alone: a bulk admission
# still never waits long on another session's row.
STATEMENT_MS_PER_STAGED_ROW = 0.2


def allow_time_for(conn: Conn, staged: int) -> int:
    """Raise this transaction's statement_timeout for a stage of `staged` rows (PostgreSQL;
    none when the session has no timeout). Returns the timeout now in force, in ms."""
    sql = of(conn)
    if not sql.is_postgres:
        return 0
    current = int(sql.text(
        "SELECT setting FROM pg_settings WHERE name = 'statement_timeout'").scalar())
    if current == 0:
        return 0
    wanted = current + int(staged * STATEMENT_MS_PER_STAGED_ROW)
    sql.text(f"SET LOCAL statement_timeout = {wanted}")
    return wanted


# --- guards ------------------------------------------------------------------------------

def lock_staged_users(conn: Conn) -> None:
    """Hold the guard rows of every user in the stage until the transaction ends (insert
    the missing ones), in user_id order: see statements._lock_guards. SQLite needs none of
    this: its write transactions are serialized (BEGIN IMMEDIATE)."""
    sql = of(conn)
    if sql.has("guards.lock_staged"):
        sql.run("guards.lock_staged")


def lock_users(conn: Conn, user_ids: Sequence[str]) -> None:
    """The guards of a few named users (forget-user), in the same order as admission."""
    sql = of(conn)
    if sql.has("guards.lock") and user_ids:
        sql.run("guards.lock", users=sorted(set(user_ids)))


def forget_guard(conn: Conn, user_id: str) -> None:
    of(conn).run("guards.forget", user_id=user_id)


# --- waves -------------------------------------------------------------------------------

def note_activity(conn: Conn) -> int:
    """Record each staged re-engagement user's last activity (the period rule reads it),
    and decide `active` the scan rows whose user has written since the candidate query (or
    has no activity left at all). Returns how many became `active`."""
    sql = of(conn)
    sql.run("admission.note_activity")
    return max(sql.run("admission.mark_active").rowcount, 0)


def mark_duplicates(conn: Conn, *, requeue: bool) -> int:
    """Wave step 1: every undecided row that conflicts with the table is a duplicate (with
    the id it duplicates)."""
    name = "admission.mark_duplicates_requeue" if requeue else "admission.mark_duplicates"
    return max(of(conn).run(name).rowcount, 0)


class Picked(NamedTuple):
    """What a wave decided: rows picked, and how many of them the cap refused."""

    rows: int
    at_cap: int

    @property
    def admitted(self) -> int:
        return self.rows - self.at_cap


def pick(conn: Conn, *, wave: int, cap: int) -> Picked:
    """Wave step 2: the first undecided row of each user is admitted, or at_cap when the
    user already has `cap` live follow-ups."""
    sql = of(conn)
    sql.run("admission.pick", wave=wave, cap=cap)
    picked, at_cap = sql.run("admission.picked", wave=wave).rows[0]
    return Picked(int(picked), int(at_cap))


def limit_wave(conn: Conn, *, wave: int, room: int) -> int:
    """Keep the first `room` rows admitted in this wave (staging order), the rest
    `over_limit`. Returns how many were admitted."""
    sql = of(conn)
    sql.run("admission.limit_wave", wave=wave, room=max(room, 0))
    return int(sql.run("admission.count_admitted", wave=wave).scalar())


def insert_admitted(conn: Conn, *, wave: int, admitted: int) -> int:
    """Write this wave's `admitted` rows to scheduled_followups. A row that still collides
    (a writer that takes no guard, e.g. the original application, inserted a live
    re-engagement meanwhile) is skipped and decided `duplicate`. Returns rows written."""
    sql = of(conn)
    written = max(sql.run("admission.insert", wave=wave).rowcount, 0)
    if written < admitted:
        sql.run("admission.insert_collided", wave=wave)
    return written


def requeue_admitted(conn: Conn, *, wave: int, now: datetime) -> int:
    """Put this wave's admitted (failed) follow-ups back to pending, due `now`, with a fresh
    retry budget; scheduled_at is untouched, error_message stays until the next attempt."""
    return max(of(conn).run("admission.requeue", wave=wave, now=now).rowcount, 0)


# --- reading the outcome ---------------------------------------------------------------

def tally(conn: Conn) -> dict[tuple[str, str], int]:
    """(outcome, trigger_type) → rows."""
    return {(str(o), str(t)): int(n) for o, t, n in of(conn).run("admission.tally").rows}


def existing(conn: Conn, followup_id: str) -> dict[str, Any] | None:
    """What a duplicate reports of the follow-up it duplicates: scheduled_at, template_id,
    conversation_id."""
    row = of(conn).run("followups.summary", id=followup_id).first()
    if row is None:
        return None
    return {"scheduled_at": as_utc(row[0]), "template_id": row[1], "conversation_id": row[2]}


DECIDED_FIELDS = ("seq", "id", "user_id", "trigger_type", "existing_id")


def decided(conn: Conn, outcome: str, limit: int | None = None) -> list[dict[str, Any]]:
    """seq, id, user_id, trigger_type, existing_id of rows with `outcome`, in staging order."""
    sql = of(conn)
    result = (sql.run("admission.decided", outcome=outcome) if limit is None
              else sql.run("admission.decided_first", outcome=outcome, limit=limit))
    return [dict(zip(DECIDED_FIELDS, row, strict=True)) for row in result.rows]


# --- COPY (PostgreSQL) -----------------------------------------------------------------

def _as_text(value: Any) -> str:
    """One CSV field for COPY: unquoted empty is NULL, anything else is quoted text."""
    if value is None:
        return ""
    return '"' + str(value).replace('"', '""') + '"'


def _as_time(value: Any, _seen: dict[Any, str] = {}) -> str:  # noqa: B006 - a memo
    """Timestamps repeat within an import (created_at for every row, scheduled_at and
    next_attempt_at of one row, events of one day): formatted once each."""
    if value is None:
        return ""
    text = _seen.get(value)
    if text is None:
        if len(_seen) > 4096:
            _seen.clear()
        text = _seen[value] = '"' + value.isoformat() + '"'
    return text


def _as_json(value: Any) -> str:
    if value is None:
        return ""
    return '"' + json.dumps(value, ensure_ascii=False).replace('"', '""') + '"'


_WRITERS: dict[str, Callable[[Any], str]] = {"time": _as_time, "json": _as_json,
                                             "text": _as_text}


def _converter(table: str, column: str) -> Callable[[Any], str]:
    """How a column's values are written, chosen once per column, not per value."""
    kind = sql_text.COLUMN_KINDS.get(table, {}).get(column, "text")
    return _WRITERS[kind]


class RowSourceFailed(RuntimeError):
    """What the driver sees when the rows behind a COPY raise: psycopg2 sends the text of
    the exception its read raised to the server, which logs it, and a row's error may quote
    the row. The caller gets the original (`_CopySource.error`)."""


class _CopySource:
    """The file COPY reads from: rows are taken and formatted only when the driver asks for
    the next piece, so the server parses and stores the first rows while the next are still
    being rendered (two processes at work instead of one after the other), and no chunk is
    held as text in full. The COPY, and so the session's statement timeout, spans the
    rendering of its rows (about a second for the scan's 20,000 here). An exception raised
    by the rows is kept for the caller; the driver sees only RowSourceFailed."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.count = 0
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> str:
        wanted = size if size > 0 else COPY_PIECE
        piece: list[str] = []
        length = 0
        try:
            for line in self.lines:
                piece.append(line)
                length += len(line)
                if length >= wanted:
                    break
        except BaseException as error:
            self.error = error
            raise RowSourceFailed("the rows of this COPY could not be read") from None
        self.count += len(piece)
        return "".join(piece)


# What the driver asks the source for at a time: large enough that the calls cost nothing,
# small enough that the server starts on the first rows at once.
COPY_PIECE = 64 * 1024


def copy_rows(conn: Conn, table: str, columns: Iterable[str],
              rows: Iterable[dict[str, Any]]) -> int:
    """COPY rows into a table inside the connection's transaction (PostgreSQL). Returns how
    many were copied."""
    names = list(columns)
    fields = [(name, _converter(table, name)) for name in names]
    source = _CopySource(",".join([write(row.get(name)) for name, write in fields]) + "\n"
                         for row in rows)
    statement = f"COPY {table} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv)"
    # The DB-API connection is the one of this transaction: COPY commits or rolls back with it.
    try:
        of(conn).copy(statement, source, size=COPY_PIECE)
    except Exception:
        if source.error is not None:
            raise source.error from None
        raise
    return source.count

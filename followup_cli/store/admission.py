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

import sqlalchemy as sa

from followup_cli.db import rules
from followup_cli.db.schema import JSONDocument, UTCDateTime
from followup_cli.db.schema import ai_messages as msg
from followup_cli.db.schema import followup_user_guards as guards
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.store.driver import raw_cursor

# Outcomes of a staged row.
ADMITTED, DUPLICATE, AT_CAP, ACTIVE, OVER_LIMIT = (
    "admitted", "duplicate", "at_cap", "active", "over_limit")

STAGE_NAME = "followup_stage"
FOLLOWUP_COLUMNS = tuple(c.name for c in sf.columns)

stage = sa.Table(
    STAGE_NAME,
    sa.MetaData(),
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    *(sa.Column(c.name, c.type) for c in sf.columns),
    # scan-inactive: the row stands only while the user's last activity is still at or
    # before this instant (they may have written since the candidate query)
    sa.Column("inactive_before", UTCDateTime()),
    sa.Column("last_activity", UTCDateTime()),
    sa.Column("outcome", sa.String(20)),
    sa.Column("existing_id", sa.String(255)),
    sa.Column("wave", sa.Integer()),
    prefixes=["TEMPORARY"],
)
# A wave updates each row it decides (outcome and wave: the new version is a few bytes
# longer than the staged one). With a little more than half of every page left free and no
# index on a column a wave changes, PostgreSQL makes that update a heap-only tuple on the
# same page: no new index entry, a third of the cost at 100,000 rows (0.32 s against
# 0.80-0.89 s with an index on undecided rows, which a wave's plan did not use anyway: it
# reads the whole stage). At 50 the last row of about one page in ten did not fit.
STAGE_FILLFACTOR = 45


def open_stage(conn: sa.Connection) -> None:
    """Create the session's staging table if this connection has none, and empty it."""
    ddl = str(sa.schema.CreateTable(stage, if_not_exists=True).compile(dialect=conn.dialect))
    if conn.dialect.name == "postgresql":
        # emptied at every commit, kept for the session
        ddl += f" WITH (fillfactor = {STAGE_FILLFACTOR}) ON COMMIT DELETE ROWS"
    conn.exec_driver_sql(ddl)
    if conn.dialect.name != "postgresql":
        conn.execute(sa.delete(stage))


def add(conn: sa.Connection, rows: Iterable[dict[str, Any]]) -> int:
    """Stage rows: dicts of scheduled_followups columns plus `seq` (unique, the order of
    admission) and optionally `inactive_before`, every row with the first row's keys.
    PostgreSQL: COPY, taking each row from `rows` only when the server is ready for more;
    SQLite: executemany. Returns how many rows were staged."""
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return 0
    if conn.dialect.name == "postgresql":
        return copy_rows(conn, STAGE_NAME, list(first), itertools.chain([first], iterator))
    batch = [first, *iterator]
    conn.execute(sa.insert(stage), batch)
    return len(batch)


# The waves' plans need the stage's size and roughly how many users it holds, not fine
# histograms: a sample of 3,000 rows (target 10) instead of 30,000 takes a tenth of the
# time (50 ms against 560 ms for 100,000 staged rows).
STAGE_STATISTICS_TARGET = 10


def analyze(conn: sa.Connection) -> None:
    """Statistics for a large stage, so the waves' joins are planned for its real size."""
    if conn.dialect.name == "postgresql":
        previous = conn.exec_driver_sql(
            "SELECT current_setting('default_statistics_target')").scalar_one()
        set_target = "SELECT set_config('default_statistics_target', %s, true)"
        conn.exec_driver_sql(set_target, (str(STAGE_STATISTICS_TARGET),))
        conn.exec_driver_sql(f"ANALYZE {STAGE_NAME}")
        conn.exec_driver_sql(set_target, (previous,))  # for the rest of the transaction
    else:
        conn.exec_driver_sql(f"ANALYZE {STAGE_NAME}")


# A wave's statements do work in proportion to the stage: the session's statement timeout
# (30 s by default, there to stop a stuck cron pass) is stretched by this much per staged
# row for the rest of the transaction, so a million-row import is not cut off halfway while
# a statement that is truly stuck still ends. lock_timeout is left alone: a bulk admission
# still never waits long on another session's row.
STATEMENT_MS_PER_STAGED_ROW = 0.2


def allow_time_for(conn: sa.Connection, staged: int) -> int:
    """Raise this transaction's statement_timeout for a stage of `staged` rows (PostgreSQL;
    none when the session has no timeout). Returns the timeout now in force, in ms."""
    if conn.dialect.name != "postgresql":
        return 0
    current = int(conn.exec_driver_sql(
        "SELECT setting FROM pg_settings WHERE name = 'statement_timeout'").scalar_one())
    if current == 0:
        return 0
    wanted = current + int(staged * STATEMENT_MS_PER_STAGED_ROW)
    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {wanted}")
    return wanted


# --- guards ------------------------------------------------------------------------------

def _lock_guards(conn: sa.Connection, users: sa.Select[Any] | list[str]) -> None:
    """Insert or lock the guard row of each user, in user_id order (one order for every
    writer, bulk or single: no deadlocks), in one statement.

    ON CONFLICT DO UPDATE locks the row it conflicts with even when its WHERE updates
    nothing, and PostgreSQL makes "insert, or lock the row that is there" atomic: a guard
    deleted meanwhile (forget-user) is inserted instead. A guard this transaction inserts
    is as good as locked: another writer's insert of it waits for this transaction, and
    finds it after."""
    source = (users if isinstance(users, sa.Select)
              else sa.select(sa.literal_column("u")).select_from(
                  sa.values(sa.column("u", sa.String), name="given").data(
                      [(u,) for u in users])))
    ordered = source.distinct().order_by(sa.text("1"))
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    upsert = pg_insert(guards).from_select(["user_id"], ordered)
    conn.execute(upsert.on_conflict_do_update(
        index_elements=[guards.c.user_id], set_={"user_id": upsert.excluded.user_id},
        where=sa.false()))


def lock_staged_users(conn: sa.Connection) -> None:
    """Hold the guard rows of every user in the stage until the transaction ends.

    Row locks live in the tuples, not in PostgreSQL's shared lock table, so a million users
    fit. SQLite needs none of this: its write transactions are serialized (BEGIN
    IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        _lock_guards(conn, sa.select(stage.c.user_id))


def lock_users(conn: sa.Connection, user_ids: Sequence[str]) -> None:
    """The guards of a few named users (forget-user), in the same order as admission."""
    if conn.dialect.name == "postgresql" and user_ids:
        _lock_guards(conn, sorted(set(user_ids)))


def forget_guard(conn: sa.Connection, user_id: str) -> None:
    conn.execute(sa.delete(guards).where(guards.c.user_id == user_id))


# --- waves -------------------------------------------------------------------------------

def note_activity(conn: sa.Connection) -> int:
    """Record each staged re-engagement user's last activity (the period rule reads it),
    and decide `active` the scan rows whose user has written since the candidate query (or
    has no activity left at all). Returns how many became `active`."""
    # Only rows whose value changes are written: the scan stages the last activity its
    # candidate query saw, so a user who has not written since costs a read, not an update
    # (the wave's own update of the row then stays heap-only: see STAGE_FILLFACTOR).
    s = stage.alias("s")
    latest = (sa.select(s.c.seq, rules.last_activity(msg, s.c.user_id).label("value"))
              .where(s.c.trigger_type == rules.REENGAGEMENT).subquery("latest"))
    conn.execute(sa.update(stage)
                 .where(stage.c.seq == latest.c.seq,
                        stage.c.last_activity.is_distinct_from(latest.c.value))
                 .values(last_activity=latest.c.value))
    result = conn.execute(
        sa.update(stage)
        .where(stage.c.outcome.is_(None), stage.c.inactive_before.is_not(None),
               sa.or_(stage.c.last_activity.is_(None),
                      stage.c.last_activity > stage.c.inactive_before))
        .values(outcome=ACTIVE))
    return int(result.rowcount or 0)


def _conflicts(requeue: bool) -> sa.Subquery:
    """(seq, existing) of every undecided staged row that conflicts with the table, and
    the follow-up it duplicates (post-event: the oldest live one in the window;
    re-engagement: the newest one closing the period). Set-based: one join per rule, so
    its cost follows the users' live follow-ups, not one lookup per staged row."""
    s, f = stage.alias("s"), sf.alias("f")
    # A failed follow-up put back by retry must not count against itself (a failed
    # re-engagement created after the user's last activity closes its own period).
    hidden = [f.c.id != s.c.id] if requeue else []

    def matches(kind: str, rule: sa.ColumnElement[bool], *order: Any) -> sa.Select[Any]:
        return (sa.select(s.c.seq, f.c.id.label("existing"),
                          sa.func.row_number().over(partition_by=s.c.seq, order_by=order)
                          .label("rank"))
                .select_from(s.join(f, sa.and_(rule, *hidden)))
                .where(s.c.outcome.is_(None), s.c.trigger_type == kind))

    found = sa.union_all(
        matches(rules.POST_EVENT, rules.duplicates_post_event(f, s.c.user_id, s.c.event_at),
                f.c.created_at, f.c.id),
        matches(rules.REENGAGEMENT, rules.closes_period(f, s.c.user_id, s.c.last_activity),
                f.c.created_at.desc(), f.c.id),
    ).subquery("found")
    return (sa.select(found.c.seq, found.c.existing).where(found.c.rank == 1)
            .subquery("conflicts"))


def mark_duplicates(conn: sa.Connection, *, requeue: bool) -> int:
    """Wave step 1: every undecided row that conflicts with the table is a duplicate."""
    conflicts = _conflicts(requeue)
    result = conn.execute(
        sa.update(stage).where(stage.c.seq == conflicts.c.seq)
        .values(outcome=DUPLICATE, existing_id=conflicts.c.existing))
    return int(result.rowcount or 0)


class Picked(NamedTuple):
    """What a wave decided: rows picked, and how many of them the cap refused."""

    rows: int
    at_cap: int

    @property
    def admitted(self) -> int:
        return self.rows - self.at_cap


def pick(conn: sa.Connection, *, wave: int, cap: int) -> Picked:
    """Wave step 2: the first undecided row of each user is admitted, or at_cap when the
    user already has `cap` live follow-ups."""
    first = (sa.select(stage.c.user_id, sa.func.min(stage.c.seq).label("seq"))
             .where(stage.c.outcome.is_(None)).group_by(stage.c.user_id).cte("first"))
    f = sf.alias("f")
    live = (sa.select(f.c.user_id, sa.func.count().label("n"))
            .where(rules.is_live(f), f.c.user_id.in_(sa.select(first.c.user_id)))
            .group_by(f.c.user_id).subquery("live"))
    decided = (sa.select(first.c.seq, sa.case(
        (rules.at_cap(sa.func.coalesce(live.c.n, 0), cap), AT_CAP), else_=ADMITTED)
        .label("outcome"))
        .select_from(first.outerjoin(live, live.c.user_id == first.c.user_id))
        .subquery("decided"))
    conn.execute(sa.update(stage).where(stage.c.seq == decided.c.seq)
                 .values(wave=wave, outcome=decided.c.outcome))
    # Counted, not the UPDATE's rowcount: Python's sqlite3 reports -1 for a statement
    # that begins with WITH.
    picked, at_cap = conn.execute(
        sa.select(sa.func.count(), sa.func.count(sa.case((stage.c.outcome == AT_CAP, 1))))
        .select_from(stage).where(stage.c.wave == wave)).one()
    return Picked(int(picked), int(at_cap))


def limit_wave(conn: sa.Connection, *, wave: int, room: int) -> int:
    """Keep the first `room` rows admitted in this wave (staging order), the rest
    `over_limit`. Returns how many were admitted."""
    keep = (sa.select(stage.c.seq)
            .where(stage.c.wave == wave, stage.c.outcome == ADMITTED)
            .order_by(stage.c.seq).limit(max(room, 0)))
    conn.execute(sa.update(stage)
                 .where(stage.c.wave == wave, stage.c.outcome == ADMITTED,
                        stage.c.seq.not_in(keep.scalar_subquery()))
                 .values(outcome=OVER_LIMIT))
    return count(conn, ADMITTED, wave=wave)


def insert_admitted(conn: sa.Connection, *, wave: int, admitted: int) -> int:
    """Write this wave's `admitted` rows to scheduled_followups. A row that still collides
    (a writer that takes no guard, e.g. the original application, inserted a live
    re-engagement meanwhile) is skipped and decided `duplicate`. Returns rows written."""
    columns = list(FOLLOWUP_COLUMNS)
    chosen = (sa.select(*(stage.c[c] for c in columns))
              .where(stage.c.wave == wave, stage.c.outcome == ADMITTED))
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    written = int(conn.execute(dialect_insert(sf).from_select(columns, chosen)
                               .on_conflict_do_nothing()).rowcount or 0)
    if written < admitted:
        conn.execute(sa.update(stage)
                     .where(stage.c.wave == wave, stage.c.outcome == ADMITTED,
                            ~sa.exists().where(sf.c.id == stage.c.id))
                     .values(outcome=DUPLICATE))
    return written


def requeue_admitted(conn: sa.Connection, *, wave: int, now: datetime) -> int:
    """Put this wave's admitted (failed) follow-ups back to pending, due `now`, with a fresh
    retry budget; scheduled_at is untouched, error_message stays until the next attempt."""
    chosen = sa.select(stage.c.id).where(stage.c.wave == wave, stage.c.outcome == ADMITTED)
    result = conn.execute(
        sa.update(sf).where(sf.c.id.in_(chosen), sf.c.status == rules.FAILED)
        .values(status=rules.PENDING, next_attempt_at=now, retry_count=0,
                locked_until=None, locked_by=None))
    return int(result.rowcount or 0)


# --- reading the outcome ---------------------------------------------------------------

def count(conn: sa.Connection, outcome: str | None, *, wave: int | None = None) -> int:
    cond = [stage.c.outcome.is_(None) if outcome is None else stage.c.outcome == outcome]
    if wave is not None:
        cond.append(stage.c.wave == wave)
    return int(conn.execute(sa.select(sa.func.count()).select_from(stage).where(*cond))
               .scalar_one())


def tally(conn: sa.Connection) -> dict[tuple[str, str], int]:
    """(outcome, trigger_type) → rows."""
    rows = conn.execute(sa.select(stage.c.outcome, stage.c.trigger_type, sa.func.count())
                        .group_by(stage.c.outcome, stage.c.trigger_type))
    return {(str(o), str(t)): int(n) for o, t, n in rows}


def decided(conn: sa.Connection, outcome: str, limit: int | None = None
            ) -> list[dict[str, Any]]:
    """seq, id, user_id, trigger_type, existing_id of rows with `outcome`, in staging order."""
    query = (sa.select(stage.c.seq, stage.c.id, stage.c.user_id, stage.c.trigger_type,
                       stage.c.existing_id)
             .where(stage.c.outcome == outcome).order_by(stage.c.seq))
    if limit is not None:
        query = query.limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


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


def _converter(table: str, column: str) -> Callable[[Any], str]:
    """How a column's values are written, chosen once per column, not per value."""
    known = stage if table == STAGE_NAME else sf
    col = known.c.get(column)
    if col is not None and isinstance(col.type, UTCDateTime):
        return _as_time
    if col is not None and isinstance(col.type, JSONDocument):
        return _as_json
    return _as_text


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


def copy_rows(conn: sa.Connection, table: str, columns: Iterable[str],
              rows: Iterable[dict[str, Any]]) -> int:
    """COPY rows into a table inside the connection's transaction (PostgreSQL). Returns how
    many were copied."""
    names = list(columns)
    fields = [(name, _converter(table, name)) for name in names]
    source = _CopySource(",".join([write(row.get(name)) for name, write in fields]) + "\n"
                         for row in rows)
    statement = f"COPY {table} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv)"
    # The DBAPI connection is the one of this transaction: COPY commits or rolls back with it.
    try:
        with raw_cursor(conn, statement) as cursor:
            cursor.copy_expert(statement, source, size=COPY_PIECE)
    except sa.exc.DBAPIError:
        if source.error is not None:
            raise source.error from None
        raise
    return source.count

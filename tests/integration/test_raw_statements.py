"""A booking and `health` on PostgreSQL run their statements on the raw driver
(Database.statements, db/raw.py) from the SQL text generated out of store/statements.py,
and never import SQLAlchemy; the same statements run under SQLAlchemy connections
everywhere else, with the same results."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from followup_cli.db import raw
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.errors import DatabaseError, SchemaError
from followup_cli.service.context import Context
from followup_cli.service.requests import post_event_request
from followup_cli.service.scheduling import schedule_post_event
from followup_cli.settings import load_settings
from followup_cli.store import delivery, executor, sql_text, statements
from tests.helpers import add_followup, command_then_print

ROOT = Path(__file__).resolve().parents[2]


def pending_rows(db_url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [(r.user_id, r.trigger_type) for r in conn.execute(
                sa.select(sf.c.user_id, sf.c.trigger_type).order_by(sf.c.user_id))]
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("args", [
    ["schedule", "post-event", "--user-id", "u1", "--conversation-id", "c1",
     "--event-date", "2030-01-02T10:00"],
    ["schedule", "reengagement", "--user-id", "u1"],
])
def test_a_booking_on_postgresql_never_imports_sqlalchemy(pg_url: str, args: list[str]
                                                          ) -> None:
    assert command_then_print(pg_url, args, "'sqlalchemy' in sys.modules")[-1] == "False"
    assert pending_rows(pg_url) == [("u1", args[1].replace("post-event", "post_event"))]
    # and again: the duplicate is found and reported on the same path
    assert command_then_print(pg_url, args, "'sqlalchemy' in sys.modules")[-1] == "False"
    assert len(pending_rows(pg_url)) == 1


@pytest.mark.postgres
def test_health_on_postgresql_never_imports_sqlalchemy(pg_url: str) -> None:
    # no pass has run: unhealthy, exit 1
    assert command_then_print(pg_url, ["health", "--json"], "'sqlalchemy' in sys.modules",
                              exit_code=1)[-1] == "False"


def test_health_reads_the_same_on_both_kinds_of_connection(db_url: str) -> None:
    """read_health through Database.statements (the raw driver on PostgreSQL) and through a
    SQLAlchemy transaction, on the same rows: the same report."""
    from followup_cli.service.delivery import run_due_for
    from followup_cli.service.monitoring import read_health

    ctx = Context(load_settings({"DATABASE_URL": db_url, "FOLLOWUP_SENDER": "log"}))
    try:
        now = ctx.now()
        add_followup(ctx, user_id="due", scheduled_at=now - timedelta(minutes=90))
        run_due_for(ctx.settings)  # an executed row with a delay, and a run record
        add_followup(ctx, user_id="late", scheduled_at=now - timedelta(hours=2))
        add_followup(ctx, user_id="failed", status="failed",
                     scheduled_at=now - timedelta(minutes=5))
        with ctx.db.statements(readonly=True) as sql:
            by_name = read_health(sql, ctx.settings, now).to_json()
        with ctx.db.transaction(readonly=True) as conn:
            by_core = read_health(conn, ctx.settings, now).to_json()
    finally:
        ctx.close()
    assert by_name == by_core
    assert by_name["pending_jobs"] == 1
    assert by_name["alerts"]["high_failure_rate"]["value"] == 1
    assert by_name["alerts"]["pending_backlog"]["value"] == 1
    assert by_name["alerts"]["execution_delay"]["value"] is not None
    assert by_name["last_run_due_at"] is not None


def test_the_generated_sql_is_current() -> None:
    """store/sql_text.py is what scripts/sql_text.py writes from the statements today."""
    assert (ROOT / "followup_cli/store/sql_text.py").read_text(encoding="utf-8") \
        == statements.generate()


def test_the_claim_returns_the_columns_a_claimed_row_names() -> None:
    """store/delivery.py builds Claimed from the claim's rows by position and must not
    import the statements' module (SQLAlchemy): the two lists are kept equal here."""
    from followup_cli.store.delivery import Claimed

    assert Claimed._fields == statements.CLAIM_COLUMNS
    for dialect in (sql_text.POSTGRESQL, sql_text.SQLITE):
        returning = dialect["delivery.claim"][0].rpartition("RETURNING ")[2]
        selected = dialect["delivery.list_due"][0].partition("SELECT ")[2].partition(" \nFROM")[0]
        for columns in (returning, selected):
            names = tuple(c.strip().rpartition(".")[2] for c in columns.split(","))
            assert names == Claimed._fields, columns


@pytest.mark.postgres
def test_a_claim_and_its_plan_settings_are_one_round_trip(pg_url: str) -> None:
    """The claim is the hot statement of a pass: its plan settings travel with it, and
    they hold in its transaction."""
    ctx = Context(load_settings({"DATABASE_URL": pg_url}))
    try:
        fid = add_followup(ctx, scheduled_at=ctx.now() - timedelta(minutes=1))
        sent: list[str] = []
        with ctx.db.statements() as sql:
            executor.listeners.append(sent.append)
            try:
                rows = delivery.claim_due(sql, due_before=ctx.now(), limit=10, run_id="r",
                                          locked_until=ctx.now() + timedelta(minutes=5))
            finally:
                executor.listeners.remove(sent.append)
            assert sql.text("SHOW enable_sort").scalar() == "off"
        assert [r.id for r in rows] == [fid]
        [claim] = sent
        assert claim.startswith(sql_text.POSTGRESQL["delivery.claim_plan"][0] + "; ")
        assert claim.endswith(sql_text.POSTGRESQL["delivery.claim"][0])
    finally:
        ctx.close()


@pytest.mark.postgres
def test_the_generated_text_is_what_the_engines_dialect_compiles(pg_engine: sa.Engine
                                                                  ) -> None:
    """The text was compiled for a dialect made offline; the engine's, initialized against
    the real server, compiles every statement to the same text."""
    with pg_engine.connect():
        pass  # initializes the dialect (server version and its features)
    for name, build in statements.BUILDERS.items():
        built = build("postgresql")
        if built is None or isinstance(built, str):
            continue
        text, _ = sql_text.POSTGRESQL[name]
        assert str(built.compile(dialect=pg_engine.dialect)).strip() == text, name


def test_an_unnamed_parameter_without_a_value_is_refused() -> None:
    statements.BUILDERS["test.unnamed"] = lambda _d: sa.select(sf.c.id).where(
        sf.c.user_id == sa.bindparam(None, type_=sa.String()))
    try:
        with pytest.raises(ValueError, match="without a name or a value"):
            statements.compiled("test.unnamed", "postgresql")
    finally:
        del statements.BUILDERS["test.unnamed"]


def _book(ctx: Context, user: str, day: int = 2) -> str:
    request = post_event_request(ctx.settings.timezone, user_id=user, conversation_id="c",
                                 event_date=f"2030-01-{day:02d}T10:00", booking_id=None,
                                 custom_message=None, delay_hours=None, template_id=None)
    return schedule_post_event(ctx, request).status


@pytest.mark.postgres
def test_one_connection_serves_the_bookings_of_a_process(pg_url: str) -> None:
    """The API books on the raw path too: one connection, kept between transactions, and
    one that broke is dropped, not handed out again."""
    ctx = Context(load_settings({"DATABASE_URL": pg_url}))
    try:
        assert _book(ctx, "a") == "scheduled"
        with ctx.db.statements() as sql:
            first = sql.text("SELECT pg_backend_pid()").scalar()
        assert _book(ctx, "b") == "scheduled"
        with ctx.db.statements() as sql:
            assert sql.text("SELECT pg_backend_pid()").scalar() == first
        admin = sa.create_engine(pg_url)
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": first})
        admin.dispose()
        with pytest.raises(DatabaseError):
            _book(ctx, "c")
        assert _book(ctx, "c") == "scheduled"  # a new connection
        assert ctx.db._engine is None  # SQLAlchemy never needed
    finally:
        ctx.close()
    assert [u for u, _ in pending_rows(pg_url)] == ["a", "b", "c"]


@pytest.mark.postgres
def test_a_dropped_server_connection_drops_every_kept_one(pg_url: str) -> None:
    """After the server ends every session (a restart), one call fails, not one per kept
    connection."""
    ctx = Context(load_settings({"DATABASE_URL": pg_url}))
    pids: list[int] = []
    start = threading.Barrier(2, timeout=30)

    def hold() -> None:
        with ctx.db.statements() as sql:
            pids.append(int(sql.text("SELECT pg_backend_pid()").scalar()))
            start.wait()  # both at once: two connections, both kept after

    try:
        threads = [threading.Thread(target=hold) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(pids)) == 2
        admin = sa.create_engine(pg_url)
        with admin.connect() as conn:
            for pid in pids:
                conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        admin.dispose()
        with pytest.raises(DatabaseError), ctx.db.statements() as sql:
            sql.text("SELECT 1")
        with ctx.db.statements() as sql:  # the other kept one was dropped too
            assert sql.text("SELECT 1").scalar() == 1
        assert _book(ctx, "after") == "scheduled"
    finally:
        ctx.close()


@pytest.mark.postgres
def test_many_threads_book_through_one_pool(pg_url: str) -> None:
    ctx = Context(load_settings({"DATABASE_URL": pg_url}))
    errors: list[BaseException] = []

    def book_many(t: int) -> None:
        try:
            for i in range(15):
                assert _book(ctx, f"t{t}-{i}") == "scheduled"
        except BaseException as error:
            errors.append(error)

    try:
        threads = [threading.Thread(target=book_many, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        ctx.close()
    assert not errors, errors[0]
    assert len(pending_rows(pg_url)) == 120


@pytest.mark.postgres
def test_the_clocks_connection_becomes_the_engines(pg_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that reads the clock and then works through SQLAlchemy (stats, import,
    scan) connects once, as before the raw path."""
    import psycopg2

    made: list[object] = []
    real = psycopg2.connect

    def counting(*args: object, **kwargs: object) -> object:
        conn = real(*args, **kwargs)
        made.append(conn)
        return conn

    monkeypatch.setattr(psycopg2, "connect", counting)
    ctx = Context(load_settings({"DATABASE_URL": pg_url}))
    try:
        ctx.now()
        with ctx.db.transaction(readonly=True) as conn:
            conn.exec_driver_sql("SELECT 1")
    finally:
        ctx.close()
    assert len(made) == 1


def test_a_naive_datetime_is_refused_before_it_reaches_the_driver() -> None:
    import sqlite3

    from followup_cli.store.executor import Sql

    conn = sqlite3.connect(":memory:")
    sql = Sql(conn, "sqlite", driver_error=sqlite3.Error, on_error=lambda e, s: e)
    with pytest.raises(ValueError, match="naive datetime"):
        sql.run("health.count_overdue", cutoff=datetime(2030, 1, 1))


def test_a_percent_in_a_text_statement_survives_psycopg2s_formatting() -> None:
    statements.BUILDERS["test.percent"] = lambda _d: "SELECT '100%'"
    try:
        found = statements.compiled("test.percent", "postgresql")
        assert found is not None and found[0] == "SELECT '100%%'"
        assert statements.compiled("test.percent", "sqlite") == ("SELECT '100%'", {})
    finally:
        del statements.BUILDERS["test.percent"]


@pytest.mark.postgres
def test_threads_share_at_most_the_pool_limit(pg_url: str) -> None:
    ctx = Context(load_settings({"DATABASE_URL": pg_url}))
    pids: set[int] = set()
    inside = threading.Barrier(raw.POOL_LIMIT, timeout=30)
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with ctx.db.statements() as sql:
                pids.add(int(sql.text("SELECT pg_backend_pid()").scalar()))
                inside.wait()  # every slot is in use at once
        except BaseException as error:
            errors.append(error)

    try:
        threads = [threading.Thread(target=hold) for _ in range(raw.POOL_LIMIT)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(pids) == raw.POOL_LIMIT
        pool = ctx.db._raw
        assert pool is not None and len(pool._idle) == raw.POOL_KEEP  # the rest closed
    finally:
        ctx.close()


@pytest.mark.postgres
def test_a_full_pool_is_an_error_not_a_hang(pg_url: str, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setattr(raw, "POOL_WAIT_S", 0.2)
    pool = raw.RawPool(pg_url)
    held = [pool.connection() for _ in range(raw.POOL_LIMIT)]
    try:
        for h in held:
            h.__enter__()
        with pytest.raises(DatabaseError, match="no free database connection"), \
                pool.connection():
            pass
    finally:
        for h in held:
            h.__exit__(None, None, None)
        pool.dispose()


@pytest.mark.postgres
def test_an_unmigrated_database_is_refused_on_the_raw_path(pg_empty_url: str) -> None:
    ctx = Context(load_settings({"DATABASE_URL": pg_empty_url}))
    try:
        with pytest.raises(SchemaError, match="db upgrade"):
            _book(ctx, "a")
    finally:
        ctx.close()


@pytest.mark.postgres
def test_the_clock_is_the_databases_on_the_raw_path(pg_url: str) -> None:
    ctx = Context(load_settings({"DATABASE_URL": pg_url}))
    try:
        offset = ctx.db.clock_offset()
        assert ctx.db._engine is None  # measured without SQLAlchemy
        assert abs(offset) < timedelta(seconds=5)  # the same host
        assert abs(ctx.now() - datetime.now(UTC)) < timedelta(seconds=5)
    finally:
        ctx.close()


def test_an_unreachable_server_is_one_line_on_the_raw_path(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "followup_cli", "schedule", "post-event", "--user-id", "u",
         "--conversation-id", "c", "--event-date", "2030-01-02T10:00"],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 4, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("followup: error: cannot use the database at postgresql://"), line
    assert "Connection refused" in line
    assert "Traceback" not in proc.stderr

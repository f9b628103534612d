"""run-due's idle fast path: decided and recorded on the raw driver, and only when idle.

These tests use the real clock: the fast path reads no FakeClock by design (it exists for
the cron process, which has none)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from followup_cli.db.schema import followup_runs
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.service.context import Context
from followup_cli.service.delivery import PassOptions, run_due_for
from followup_cli.service.monitoring import check_health
from followup_cli.settings import load_settings
from followup_cli.store import runs
from tests.helpers import add_followup, command_then_print


@pytest.fixture
def real_ctx(db_url: str) -> Iterator[Context]:
    ctx = Context(load_settings({"DATABASE_URL": db_url, "FOLLOWUP_SENDER": "log"}))
    yield ctx
    ctx.close()


def run_count(ctx: Context) -> int:
    with ctx.db.transaction(readonly=True) as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(followup_runs)).scalar_one())


def test_idle_pass_is_recorded_like_a_full_one(real_ctx: Context) -> None:
    result = run_due_for(real_ctx.settings)
    assert (result.claimed, result.executed, result.stopped) == (0, 0, "drained")
    with real_ctx.db.transaction(readonly=True) as conn:
        last = runs.last_finished(conn, "run-due")
    assert last is not None and last["id"] == result.run_id
    assert last["status"] == "ok" and last["counts"]["claimed"] == 0
    # the timestamps read back as the UTC instants that were written
    assert abs(last["finished_at"] - real_ctx.now()) < timedelta(minutes=1)
    assert last["started_at"] <= last["finished_at"]
    report = check_health(real_ctx)
    assert report.scheduler_running and report.status == "healthy"


def test_due_work_takes_the_full_path(real_ctx: Context) -> None:
    fid = add_followup(real_ctx, scheduled_at=real_ctx.now() - timedelta(minutes=1))
    future = add_followup(real_ctx, user_id="u2",
                          scheduled_at=real_ctx.now() + timedelta(days=1))
    result = run_due_for(real_ctx.settings)
    assert (result.claimed, result.executed) == (1, 1)
    assert [d["id"] for d in result.deliveries] == [fid]
    with real_ctx.db.transaction(readonly=True) as conn:
        statuses = dict(conn.execute(sa.select(sf.c.id, sf.c.status)).all())
    assert statuses == {fid: "executed", future: "pending"}
    assert run_count(real_ctx) == 1


def test_an_expired_lease_takes_the_full_path(real_ctx: Context) -> None:
    fid = add_followup(real_ctx, status="processing", locked_by="dead-pass",
                       locked_until=real_ctx.now() - timedelta(seconds=5),
                       scheduled_at=real_ctx.now() - timedelta(minutes=20))
    result = run_due_for(real_ctx.settings)
    assert result.recovered == 1 and result.executed == 1
    with real_ctx.db.transaction(readonly=True) as conn:
        assert conn.execute(sa.select(sf.c.status).where(sf.c.id == fid)).scalar() == "executed"


def test_disabled_and_dry_run_record_nothing(real_ctx: Context, db_url: str) -> None:
    off = load_settings({"DATABASE_URL": db_url, "SCHEDULER_ENABLED": "false",
                         "FOLLOWUP_SENDER": "log"})
    assert run_due_for(off).disabled
    assert run_due_for(real_ctx.settings, PassOptions(dry_run=True)).dry_run
    assert run_count(real_ctx) == 0


@pytest.mark.postgres
def test_an_unmigrated_database_is_reported_by_the_full_path(pg_empty_url: str) -> None:
    from followup_cli.errors import SchemaError

    with pytest.raises(SchemaError, match="followup db upgrade"):
        run_due_for(load_settings({"DATABASE_URL": pg_empty_url, "FOLLOWUP_SENDER": "log"}))


def pass_then_print(db_url: str, expression: str) -> str:
    """An idle-or-not `followup run-due` in a fresh interpreter, then `expression`."""
    return command_then_print(db_url, ["run-due"], expression, FOLLOWUP_SENDER="log")[-1]


def test_an_idle_cron_pass_never_imports_sqlalchemy(db_url: str) -> None:
    assert pass_then_print(db_url, "'sqlalchemy' in sys.modules") == "False"


def test_a_pass_with_work_imports_only_what_its_database_needs(db_url: str) -> None:
    """On PostgreSQL a pass with work runs its statements on the raw driver and never
    imports SQLAlchemy (most of a cold pass's cost); on SQLite it imports SQLAlchemy's
    SQLite dialect only (partial indexes carry no dialect keywords)."""
    ctx = Context(load_settings({"DATABASE_URL": db_url}))
    fid = add_followup(ctx, scheduled_at=ctx.now() - timedelta(minutes=1))
    ctx.close()
    printed = pass_then_print(db_url, "sorted(m for m in sys.modules if m in ('sqlalchemy', "
                              "'sqlalchemy.dialects.sqlite', 'sqlalchemy.dialects.postgresql'))")
    if db_url.startswith("postgresql"):
        assert printed == "[]"
    else:
        assert printed == str(["sqlalchemy", "sqlalchemy.dialects.sqlite"])
    ctx = Context(load_settings({"DATABASE_URL": db_url}))
    try:
        with ctx.db.transaction(readonly=True) as conn:
            status = conn.execute(sa.select(sf.c.status).where(sf.c.id == fid)).scalar_one()
        assert status == "executed"
    finally:
        ctx.close()


@pytest.mark.postgres
def test_a_pass_that_retries_and_prints_its_summary_never_imports_sqlalchemy(
        pg_url: str) -> None:
    """A cron pass whose sends fail prints a retry summary when it is news, which it
    decides from the run records: by name too, so on PostgreSQL still no SQLAlchemy."""
    ctx = Context(load_settings({"DATABASE_URL": pg_url}))
    add_followup(ctx, scheduled_at=ctx.now() - timedelta(minutes=1))
    ctx.close()
    *report, imported = command_then_print(
        pg_url, ["run-due"], "'sqlalchemy' in sys.modules", FOLLOWUP_SENDER="command:false")
    assert any("retrying: 1 follow-ups will be retried" in line for line in report), report
    assert imported == "False"
    ctx = Context(load_settings({"DATABASE_URL": pg_url}))
    try:
        with ctx.db.transaction(readonly=True) as conn:
            counts = conn.execute(sa.text(
                "SELECT counts FROM followup_runs WHERE kind = 'run-due'")).scalar_one()
        assert counts["retry_summary"] == ["command exited with 1"], counts
    finally:
        ctx.close()


@pytest.mark.postgres
def test_the_full_pass_reuses_the_probes_connection(pg_url: str) -> None:
    """When the probe finds work, its open connection becomes the full pass's first one
    (one connect per cron pass, not two)."""
    from followup_cli.db import CONNECT_TIMEOUT_S, STATEMENT_TIMEOUT_MS
    from followup_cli.db.compat import head_revision
    from followup_cli.db.engine import Database
    from followup_cli.settings import normalize_database_url
    from followup_cli.store.idle_probe import record_if_idle

    url = normalize_database_url(pg_url)
    ctx = Context(load_settings({"DATABASE_URL": pg_url}))
    add_followup(ctx, scheduled_at=ctx.now() - timedelta(minutes=1))
    ctx.close()
    handed: list = []
    assert not record_if_idle(url, revision=head_revision(), run_id="r", counts={},
                              statement_timeout_ms=STATEMENT_TIMEOUT_MS,
                              connect_timeout_s=CONNECT_TIMEOUT_S, handover=handed.append)
    [probe] = handed
    assert not probe.closed
    db = Database(url)
    db.adopt(probe)
    try:
        with db.statements() as sql:  # the pass's transactions (the raw driver's)
            assert sql.dbapi_conn is probe
        with db.transaction() as conn:  # and SQLAlchemy's, should one follow
            assert conn.connection.dbapi_connection is probe
            assert conn.execute(sa.select(sa.func.count()).select_from(sf)).scalar_one() == 1
    finally:
        db.dispose()
    assert handed[0].closed  # disposed with the pool


def test_a_signal_during_an_idle_pass_is_its_exit_code(real_ctx: Context) -> None:
    """SIGTERM while the idle probe runs: nothing to stop, but the pass must still say it
    was stopped (exit 143), as any other pass does; it reported a plain idle pass."""
    from followup_cli.service.delivery import StopRequest

    stop = StopRequest()
    stop(15)
    result = run_due_for(real_ctx.settings, stop=stop)
    assert (result.claimed, result.stopped, result.signal) == (0, "signal", 15)
    assert run_count(real_ctx) == 1  # recorded all the same

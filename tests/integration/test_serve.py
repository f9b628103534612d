"""`followup serve` in a thread: a real HTTP client against a real server, on both databases."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from followup_cli.errors import DatabaseError
from followup_cli.service.context import Context
from followup_cli.service.metrics import collect_metrics, exposition
from followup_cli.service.serving import (
    MonitorApp,
    MonitorServer,
    parse_bind,
    read_only_context,
)
from followup_cli.settings import load_settings
from followup_cli.store import runs
from tests.conftest import PG_ADMIN_URL, FakeClock, MakeCtx, _admin_engine

Serve = Callable[..., tuple[str, Context]]


def finish_pass(ctx: Context) -> None:
    with ctx.db.transaction() as conn:
        rid = uuid.uuid4().hex
        runs.start(conn, run_id=rid, kind="run-due", host="h", pid=1,
                   started_at=ctx.now() - timedelta(seconds=1))
        runs.finish(conn, run_id=rid, finished_at=ctx.now(), status="ok", counts={})


@pytest.fixture
def serve(clock: FakeClock) -> Iterator[Serve]:
    """Start a server on a free port for a database URL; returns its base URL and context
    (whose clock is the test clock)."""
    started: list[tuple[MonitorServer, threading.Thread]] = []

    def start(url: str, **env: str) -> tuple[str, Context]:
        ctx = read_only_context(load_settings({"DATABASE_URL": url, **env}))
        ctx.clock = clock
        server = MonitorServer("127.0.0.1", 0, MonitorApp(ctx))
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        started.append((server, thread))
        return server.url, ctx

    yield start
    for server, thread in started:
        server.shutdown()
        thread.join(5)
        server.server_close()
        server.app.ctx.close()


def test_health_is_the_guides_json_200_or_503(db_url: str, ctx: Context, serve: Serve) -> None:
    base, _ = serve(db_url)
    down = httpx.get(base + "/api/scheduler/health")
    assert down.status_code == 503  # no run-due pass ever: unhealthy
    assert down.headers["content-type"] == "application/json; charset=utf-8"
    assert down.json()["status"] == "unhealthy"
    finish_pass(ctx)
    up = httpx.get(base + "/api/scheduler/health?probe=lb")  # a query string is ignored
    assert up.status_code == 200
    doc = up.json()
    assert {"status", "scheduler_running", "pending_jobs", "executed_today"} <= set(doc)
    assert (doc["status"], doc["scheduler_running"], doc["pending_jobs"]) == (
        "healthy", True, 0)
    assert "missed_daily_scan" in doc["alerts"] and doc["error"] is None
    disabled_base, _ = serve(db_url, SCHEDULER_ENABLED="false")
    disabled = httpx.get(disabled_base + "/api/scheduler/health")
    assert (disabled.status_code, disabled.json()["status"]) == (200, "disabled")


def test_metrics_is_the_same_text_as_stats(db_url: str, make_ctx: MakeCtx,
                                           serve: Serve) -> None:
    writer = make_ctx()
    finish_pass(writer)
    base, _ = serve(db_url)
    answer = httpx.get(base + "/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    # the same clock, the same database: the very text `stats --format prometheus` prints
    assert answer.text == exposition(collect_metrics(writer))
    names = {f.name for f in text_string_to_metric_families(answer.text)}
    assert {"followup_pending_jobs", "followup_alert_firing", "followup_database_up"} <= names


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD",
                                    "TRACE", "BREW"])
def test_any_other_method_is_405_with_allow(sqlite_url: str, serve: Serve,
                                            method: str) -> None:
    base, _ = serve(sqlite_url)
    for path in ("/api/scheduler/health", "/metrics", "/elsewhere"):
        answer = httpx.request(method, base + path)
        assert answer.status_code == 405, (method, path)
        assert answer.headers["allow"] == "GET"


def test_any_other_path_is_404(sqlite_url: str, serve: Serve) -> None:
    base, _ = serve(sqlite_url)
    for path in ("/", "/health", "/api/scheduler/health/", "/metrics/x", "/../etc/passwd"):
        assert httpx.get(base + path).status_code == 404, path


def test_database_down_is_503_with_the_error_object(serve: Serve) -> None:
    base, _ = serve("postgresql://app:hunter2@127.0.0.1:1/nowhere")
    health = httpx.get(base + "/api/scheduler/health")
    assert health.status_code == 503
    doc = health.json()
    assert doc["status"] == "unhealthy" and doc["scheduler_running"] is False
    assert doc["error"]["exit_code"] == 4
    assert "cannot use the database" in doc["error"]["message"]
    assert "hunter2" not in health.text
    metrics = httpx.get(base + "/metrics")
    assert metrics.status_code == 200  # the outage is a series, not a failed scrape
    assert "followup_database_up 0.0" in metrics.text
    assert "hunter2" not in metrics.text


@pytest.mark.postgres
def test_never_migrates_an_empty_database(pg_empty_url: str, serve: Serve) -> None:
    base, ctx = serve(pg_empty_url)
    health = httpx.get(base + "/api/scheduler/health")
    assert health.status_code == 503
    assert "followup db upgrade" in health.json()["error"]["message"]
    assert ctx.db.current_revision() is None  # still empty: serve never writes


def test_its_connections_refuse_writes(db_url: str, serve: Serve) -> None:
    _, ctx = serve(db_url)
    with pytest.raises(DatabaseError), ctx.db.transaction() as conn:
        conn.execute(sa.text("DELETE FROM followup_runs"))


def test_its_raw_transactions_refuse_writes_too(db_url: str, serve: Serve) -> None:
    """The health endpoint reads through the raw pool (Database.statements) on PostgreSQL:
    its connections refuse writes as the engine's do (they were read-write)."""
    _, ctx = serve(db_url)
    with pytest.raises(DatabaseError), ctx.db.statements() as sql:
        sql.text("DELETE FROM followup_runs")


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nowhere' / 'followup.db'}"
    with pytest.raises(DatabaseError, match="no database at"):
        read_only_context(load_settings({"DATABASE_URL": url}))
    assert not (tmp_path / "nowhere").exists()


def test_an_existing_sqlite_file_is_served_whatever_the_urls_query(sqlite_url: str) -> None:
    """`?timeout=5` is part of the URL, not of the file's name: every other command read
    it so, and serve refused the file ("no database at .../f.db?timeout=5")."""
    ctx = read_only_context(load_settings({"DATABASE_URL": sqlite_url + "?timeout=5"}))
    try:
        assert ctx.db.schema_state().to_json()["state"] == "current"
    finally:
        ctx.close()


def test_requests_share_a_small_pool(db_url: str, ctx: Context, serve: Serve) -> None:
    finish_pass(ctx)
    base, serving = serve(db_url)
    opened: list[int] = []
    held = {"now": 0, "most": 0}
    lock = threading.Lock()

    def checkout(*_: Any) -> None:
        with lock:
            held["now"] += 1
            held["most"] = max(held["most"], held["now"])

    def checkin(*_: Any) -> None:
        with lock:
            held["now"] -= 1

    engine = serving.db.engine
    sa.event.listen(engine, "connect", lambda *_: opened.append(1))
    sa.event.listen(engine, "checkout", checkout)
    sa.event.listen(engine, "checkin", checkin)
    paths = ["/api/scheduler/health", "/metrics"] * 20
    with httpx.Client() as client, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda p: client.get(base + p).status_code, paths))
    assert codes == [200] * 40
    # pooled, not a connection per request (overflow connections are closed on return and
    # may be opened again, so a few more than the pool's size)
    assert 1 <= len(opened) < len(paths) // 2, len(opened)
    if serving.db.is_postgres:
        assert held["most"] <= 4  # pool_size 2 + max_overflow 2, whatever the load


@pytest.mark.postgres
def test_runs_as_a_read_only_role(pg_url: str, serve: Serve, clock: FakeClock) -> None:
    role = f"followup_monitor_{uuid.uuid4().hex[:8]}"
    database = pg_url.rsplit("/", 1)[1]
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
    owner = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg2://", 1),
                             isolation_level="AUTOCOMMIT")
    try:
        with owner.connect() as conn:
            conn.exec_driver_sql(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
            conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA public TO "{role}"')
            conn.exec_driver_sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
        writer = Context(load_settings({"DATABASE_URL": pg_url}), clock=clock)
        finish_pass(writer)
        writer.close()
        base_url = PG_ADMIN_URL.rsplit("@", 1)[1].rsplit("/", 1)[0]
        base, _ = serve(f"postgresql://{role}@{base_url}/{database}")
        health = httpx.get(base + "/api/scheduler/health")
        assert health.status_code == 200, health.text
        metrics = httpx.get(base + "/metrics")
        assert "followup_database_up 1.0" in metrics.text
    finally:
        with owner.connect() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
        owner.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE usename = '{role}'")
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        admin.dispose()


def test_bind_is_parsed_strictly() -> None:
    assert parse_bind("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert parse_bind("[::1]:0") == ("::1", 0)
    assert parse_bind("0.0.0.0:9464") == ("0.0.0.0", 9464)
    for bad in ("8000", "localhost", ":8000", "host:port", "h:70000", ""):
        with pytest.raises(Exception, match="--bind"):
            parse_bind(bad)


def test_health_document_is_one_json_object(sqlite_url: str, serve: Serve) -> None:
    base, _ = serve(sqlite_url)
    text = httpx.get(base + "/api/scheduler/health").text
    assert text.endswith("\n") and text.count("\n") == 1
    assert isinstance(json.loads(text), dict)

"""`health` (the scan, --quiet), `serve`'s CLI edge, and the pass report's policy."""

from __future__ import annotations

import io
import json
import socket
import uuid
from datetime import timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from followup_cli.cli.app import app
from followup_cli.cli.output import Output
from followup_cli.cli.pass_report import failed_line, one_line, show_run_due
from followup_cli.service.context import Context
from followup_cli.service.delivery import PassResult
from followup_cli.service.retry_summaries import error_kind, summary_is_news
from followup_cli.store import runs
from followup_cli.timeutil import utcnow
from tests.conftest import FakeClock, MakeCtx
from tests.helpers import add_followup

runner = CliRunner()


def run(url: str, *args: str, **env: str) -> Any:
    return runner.invoke(app, list(args), env={"DATABASE_URL": url, **env})


@pytest.fixture
def live(make_ctx: MakeCtx, clock: FakeClock) -> Context:
    clock.now = utcnow()
    return make_ctx()


def finish(ctx: Context, kind: str = "run-due", ago: timedelta = timedelta(0),
           counts: dict[str, Any] | None = None, status: str = "ok") -> str:
    rid = uuid.uuid4().hex
    with ctx.db.transaction() as conn:
        runs.start(conn, run_id=rid, kind=kind, host="h", pid=1,
                   started_at=ctx.now() - ago - timedelta(seconds=1))
        runs.finish(conn, run_id=rid, finished_at=ctx.now() - ago, status=status,
                    counts=counts or {})
    return rid


# --- health -------------------------------------------------------------------------------

def test_health_shows_the_last_scan(db_url: str, live: Context) -> None:
    finish(live)
    finish(live, "scan-inactive", timedelta(hours=2), {"candidates": 5, "scheduled": 4,
                                                       "skipped_cap": 1})
    doc = json.loads(run(db_url, "health", "--json").stdout)
    assert doc["last_scan_inactive"]["status"] == "ok"
    assert doc["last_scan_inactive"]["counts"]["scheduled"] == 4
    assert doc["alerts"]["missed_daily_scan"]["firing"] is False
    plain = run(db_url, "health")
    assert plain.exit_code == 0, plain.output
    line = next(x for x in plain.stdout.splitlines() if x.startswith("last_scan_inactive:"))
    assert line.endswith(" ok, candidates 5, scheduled 4, skipped_cap 1")
    assert "missed_daily_scan\t2" in plain.stdout  # value 2 (hours), threshold 25 hours


def test_health_quiet_speaks_only_when_something_needs_attention(db_url: str,
                                                                 live: Context) -> None:
    unhealthy = run(db_url, "health", "--quiet")  # no pass ever
    assert (unhealthy.exit_code, unhealthy.stdout) == (
        1, "followup health: unhealthy (scheduler_down)\n")
    finish(live)
    finish(live, "scan-inactive")
    healthy = run(db_url, "health", "-q")
    assert (healthy.exit_code, healthy.stdout, healthy.stderr) == (0, "", "")
    for _ in range(3):
        add_followup(live, status="failed", last_attempt_at=live.now())
    degraded = run(db_url, "health", "--quiet", FOLLOWUP_ALERT_FAILURES="2")
    assert (degraded.exit_code, degraded.stdout) == (
        1, "followup health: degraded (high_failure_rate)\n")
    disabled = run(db_url, "health", "--quiet", SCHEDULER_ENABLED="false")
    assert (disabled.exit_code, disabled.stdout) == (0, "")
    # --json wins: the document, always
    assert json.loads(run(db_url, "health", "--quiet", "--json").stdout)["status"] == "healthy"


def test_health_quiet_with_the_database_down_is_the_one_error_line() -> None:
    result = run("postgresql://app:hunter2@127.0.0.1:1/nowhere", "health", "--quiet")
    assert result.exit_code == 4 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot use the database" in lines[0]
    assert "hunter2" not in result.stderr


def test_serve_cannot_bind_a_busy_port_exit_1(sqlite_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(sqlite_url, "serve", "--bind", f"127.0.0.1:{port}", "--json")
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in json.loads(result.stdout)["error"]["message"]


# --- the pass report ----------------------------------------------------------------------

def test_error_kind_keeps_the_cause_and_drops_the_detail() -> None:
    assert error_kind("webhook unreachable: [Errno 111] Connection refused") == (
        "webhook unreachable")
    assert error_kind("webhook answered HTTP 503 Service Unavailable") == (
        "webhook answered HTTP 503 Service Unavailable")
    assert error_kind("command exited with 3: gateway\ndown") == "command exited with 3"
    assert error_kind("") == "unknown error"


def test_failure_lines_are_one_bounded_line() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 1000)) == 300
    assert failed_line({"id": "f1", "retry_count": 4, "error": "HTTP 503\nretry later"}) == (
        "failed: f1 after 4 attempts: HTTP 503 retry later")


def test_terminal_gets_every_problem_every_time() -> None:
    stream = io.StringIO()
    result = PassResult(run_id=None, claimed=2, retried=1, failed=1, problems=[
        {"id": "f1", "status": "failed", "retry_count": 1, "error": "HTTP 404",
         "next_attempt_at": None},
        {"id": "f2", "status": "pending", "retry_count": 1, "error": "HTTP 503",
         "next_attempt_at": "2026-11-20T12:01:00+00:00"}])
    show_run_due(Output(json_mode=False, stream=stream, terminal=True), result)
    text = stream.getvalue()
    assert "failed: f1 (attempt 1): HTTP 404" in text
    assert "pending: f2 (attempt 1): HTTP 503, next attempt 2026-11-20T12:01:00+00:00" in text


def test_more_failures_than_listed_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    result = PassResult(run_id=None, failed=3, problems=[
        {"id": "f1", "status": "failed", "retry_count": 4, "error": "HTTP 500",
         "next_attempt_at": None}])
    show_run_due(Output(json_mode=False, stream=stream, terminal=False), result)
    assert stream.getvalue().splitlines() == [
        "failed: f1 after 4 attempts: HTTP 500",
        "failed: 2 more follow-ups failed for good (followup list --status failed)"]


def test_summary_is_news_first_new_kind_and_hourly(ctx: Context, clock: FakeClock) -> None:
    first = finish(ctx)
    assert summary_is_news(ctx, first, ["HTTP 503"])
    clock.advance(minutes=1)
    assert not summary_is_news(ctx, finish(ctx), ["HTTP 503"])
    clock.advance(minutes=1)
    assert summary_is_news(ctx, finish(ctx), ["HTTP 503", "timed out"])  # a new kind
    clock.advance(minutes=1)
    assert not summary_is_news(ctx, finish(ctx), ["timed out"])  # both said this hour
    clock.advance(minutes=61)
    assert summary_is_news(ctx, finish(ctx), ["HTTP 503"])  # an hour since the last
    assert summary_is_news(ctx, "no-such-run", ["HTTP 503"]) is False  # already said

"""Operator commands through the CLI: exit codes, one JSON document, one-line errors."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from followup_cli.cli.app import app
from followup_cli.service.context import Context
from followup_cli.store import runs
from followup_cli.timeutil import utcnow
from tests.conftest import FakeClock, MakeCtx
from tests.helpers import add_conversation, add_followup, rows

runner = CliRunner()


def run(url: str, *args: str, **env: str) -> Any:
    return runner.invoke(app, list(args), env={"DATABASE_URL": url, **env})


def one_error_line(result: Any, needle: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def live(make_ctx: MakeCtx, clock: FakeClock) -> Context:
    """A context on the test database whose clock is the real time, as the CLI's is."""
    clock.now = utcnow()
    return make_ctx()


def finish_pass(ctx: Context) -> None:
    with ctx.db.transaction() as conn:
        rid = uuid.uuid4().hex
        runs.start(conn, run_id=rid, kind="run-due", host="h", pid=1, started_at=ctx.now())
        runs.finish(conn, run_id=rid, finished_at=ctx.now(), status="ok", counts={})


# --- health -----------------------------------------------------------------------------

def test_health_healthy_exit_0(db_url: str, live: Context) -> None:
    finish_pass(live)
    result = run(db_url, "health", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "healthy"
    assert doc["scheduler_running"] is True
    assert (doc["pending_jobs"], doc["executed_today"]) == (0, 0)
    assert set(doc["alerts"]) == {"high_failure_rate", "scheduler_down", "execution_delay",
                                  "pending_backlog", "missed_daily_scan"}
    assert doc["alerts"]["high_failure_rate"]["threshold"] == 10
    plain = run(db_url, "health")
    assert plain.exit_code == 0 and "status: healthy" in plain.stdout
    assert "\x1b[" not in plain.stdout


def test_health_not_healthy_exit_1(db_url: str, live: Context) -> None:
    result = run(db_url, "health", "--json")  # no run-due pass ever
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "unhealthy"
    finish_pass(live)
    for _ in range(3):
        add_followup(live, status="failed", last_attempt_at=live.now())
    degraded = run(db_url, "health", "--json", FOLLOWUP_ALERT_FAILURES="2")
    assert degraded.exit_code == 1
    doc = json.loads(degraded.stdout)
    assert doc["status"] == "degraded"
    assert doc["alerts"]["high_failure_rate"] == {**doc["alerts"]["high_failure_rate"],
                                                  "value": 3, "threshold": 2, "firing": True}


def test_health_disabled_exit_0(db_url: str) -> None:
    result = run(db_url, "health", "--json", SCHEDULER_ENABLED="false")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "disabled"


def test_health_shows_the_embedded_sqlite_path(sqlite_url: str) -> None:
    result = run(sqlite_url, "health")
    assert f"database: {sqlite_url}" in result.stdout


def test_health_unreachable_database_exit_4() -> None:
    url = "postgresql://app:hunter2@127.0.0.1:1/nowhere"
    result = run(url, "health", "--json")
    assert result.exit_code == 4
    doc = json.loads(result.stdout)  # still exactly one document
    assert doc["status"] == "unhealthy"
    assert doc["scheduler_running"] is False
    # the one error shape of every command, beside the health fields
    assert doc["error"]["exit_code"] == 4
    assert "cannot use the database" in doc["error"]["message"]
    assert doc["database"] == "postgresql://app:***@127.0.0.1:1/nowhere"  # the form psql takes
    one_error_line(result, "cannot use the database")
    assert "hunter2" not in result.output
    plain = run(url, "health")
    assert plain.exit_code == 4 and "status: unhealthy" in plain.stdout


@pytest.mark.postgres
def test_health_unmigrated_database_exit_4(pg_empty_url: str) -> None:
    result = run(pg_empty_url, "health")
    assert result.exit_code == 4
    one_error_line(result, "followup db upgrade")


# --- stats ------------------------------------------------------------------------------

def test_stats_json_and_prometheus(db_url: str, live: Context) -> None:
    add_followup(live, status="failed", error_message="HTTP 500", retry_count=4)
    add_followup(live, status="executed", executed_at=live.now(),
                 scheduled_at=live.now() - timedelta(seconds=90))
    result = run(db_url, "stats", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # health's names for the figures both show (one name per figure)
    assert doc["executed_today"] == 1 and doc["pending_jobs"] == 0
    assert doc["failed_jobs"] == 1
    assert "pending" not in doc and "failed_total" not in doc
    assert doc["recent_failures"][0]["error_message"] == "HTTP 500"
    assert doc["execution_rate"][0]["avg_delay_seconds"] == pytest.approx(90, abs=0.01)
    prom = run(db_url, "stats", "--format", "prometheus")
    assert prom.exit_code == 0, prom.output
    families = {f.name: f for f in text_string_to_metric_families(prom.stdout)}
    assert families["followup_executed_today"].samples[0].value == 1
    assert families["followup_failed_jobs"].samples[0].value == 1
    assert "# HELP followup_pending_jobs" in prom.stdout
    text = run(db_url, "stats", "--days", "30")
    assert text.exit_code == 0 and "execution rate" in text.stdout


def test_stats_bad_options_exit_2(db_url: str) -> None:
    both = run(db_url, "stats", "--json", "--format", "prometheus")
    assert both.exit_code == 2
    assert run(db_url, "stats", "--days", "0").exit_code == 2


# --- cleanup ----------------------------------------------------------------------------

def test_cleanup_needs_yes_without_a_terminal(db_url: str, live: Context) -> None:
    old = live.now() - timedelta(days=100)
    add_followup(live, status="executed", executed_at=old)
    refused = run(db_url, "cleanup")
    assert refused.exit_code == 2
    one_error_line(refused, "--yes")
    assert len(rows(live)) == 1
    dry = run(db_url, "cleanup", "--dry-run", "--json")
    assert dry.exit_code == 0
    assert json.loads(dry.stdout)["counts"] == {"executed": 1, "runs": 0}
    assert len(rows(live)) == 1
    done = run(db_url, "cleanup", "--yes", "--json")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert (doc["dry_run"], doc["total"], doc["counts"]["executed"]) == (False, 1, 1)
    assert rows(live) == []
    again = run(db_url, "cleanup")  # nothing to delete: no question, exit 0
    assert again.exit_code == 0 and "deleted 0 rows" in again.stdout


def test_cleanup_negative_age_exit_2(db_url: str) -> None:
    assert run(db_url, "cleanup", "--older-than-days", "-5", "--yes").exit_code == 2


# --- list / show / retry ----------------------------------------------------------------

def test_list_show_retry(db_url: str, live: Context) -> None:
    add_followup(live, id="f1", status="failed", message_content="Hi Alice", user_id="alice")
    add_followup(live, id="p1", user_id="bob")
    listed = run(db_url, "list", "--status", "failed", "--json")
    assert listed.exit_code == 0, listed.output
    assert [r["id"] for r in json.loads(listed.stdout)["followups"]] == ["f1"]
    plain = run(db_url, "list", "--user-id", "bob")
    assert "p1" in plain.stdout and "f1" not in plain.stdout
    shown = run(db_url, "show", "f1")
    assert shown.exit_code == 0 and "Hi Alice" not in shown.stdout
    assert "--show-message" in shown.stdout
    revealed = run(db_url, "show", "f1", "--show-message", "--json")
    assert json.loads(revealed.stdout)["message_content"] == "Hi Alice"
    missing = run(db_url, "show", "nope")
    assert missing.exit_code == 2
    one_error_line(missing, "nope")
    retried = run(db_url, "retry", "f1", "--json")
    assert retried.exit_code == 0, retried.output
    assert json.loads(retried.stdout)["retried"] == 1
    again = run(db_url, "retry", "f1")  # now pending: refused
    assert again.exit_code == 3 and "not failed" in again.stdout
    assert run(db_url, "retry", "nope").exit_code == 2
    assert run(db_url, "list", "--status", "bogus").exit_code == 2


# --- forget-user ------------------------------------------------------------------------

def test_forget_user(db_url: str, live: Context) -> None:
    add_conversation(live, "c-a", "alice", [0.5])
    add_followup(live, user_id="alice", conversation_id="c-a")
    add_followup(live, user_id="bob")
    refused = run(db_url, "forget-user", "alice")
    assert refused.exit_code == 2
    one_error_line(refused, "--yes")
    assert "alice" not in refused.stderr  # error output ends up in logs
    assert len(rows(live)) == 2
    done = run(db_url, "forget-user", "alice", "--yes", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["deleted"] == {"followups": 1, "messages": 1,
                                                  "conversations": 1}
    assert [r["user_id"] for r in rows(live)] == ["bob"]
    add_followup(live, user_id="bob", status="processing", locked_by="a-live-pass",
                 locked_until=live.now() + timedelta(minutes=5))
    busy = run(db_url, "forget-user", "bob", "--yes")
    assert busy.exit_code == 3
    one_error_line(busy, "being delivered")


# --- templates --------------------------------------------------------------------------

def test_templates_list_and_preview(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[templates.vip]\ncontent = "Dear {custom_message}, see you {event_date}"\n',
                    encoding="utf-8")
    listed = run(sqlite_url, "templates", "list", "--json",
                 FOLLOWUP_TEMPLATES_FILE=str(path))
    assert listed.exit_code == 0, listed.output
    by_id = {t["id"]: t for t in json.loads(listed.stdout)["templates"]}
    assert by_id["vip"]["source"] == str(path)
    assert by_id["vip"]["placeholders"] == ["event_date", "custom_message"]
    assert by_id["post_event_high_emotion"]["source"] == "built-in"
    preview = run(sqlite_url, "templates", "preview", "vip", "--event-date",
                  "2026-11-14T18:00", "--json", FOLLOWUP_TEMPLATES_FILE=str(path))
    assert preview.exit_code == 0, preview.output
    doc = json.loads(preview.stdout)
    assert doc["message"].endswith("see you November 14, 2026")
    assert doc["sampled"] == ["custom_message"]
    plain = run(sqlite_url, "templates", "preview", "reengagement_low_emotion",
                "--days-inactive", "45")
    assert plain.exit_code == 0 and "it's been 45 days" in plain.stdout
    assert run(sqlite_url, "templates", "preview", "nope").exit_code == 2
    bad_value = run(sqlite_url, "templates", "preview", "vip", "--event-date", "soon",
                    FOLLOWUP_TEMPLATES_FILE=str(path))
    assert bad_value.exit_code == 2


@pytest.mark.parametrize(("text", "needle"), [
    ("[templates.x\n", "not valid TOML"),
    ('[templates.welcome]\ncontent = "Hi {name}"\n', "template welcome"),
    ('[templates.d]\ncontent = "{event_date.x}"\n', "template d"),
    ('[templates.f]\ncontent = "{event_date:>9}"\n', "template f"),
    ('[templates.e]\ncontent = ""\n', "template e"),
    ('[templates.k]\ncontent = "x"\nsubject = "y"\n', "template k"),
    ("[templates]\nw = 'x'\n", "template w"),
])
def test_bad_templates_file_exit_2_one_line(sqlite_url: str, tmp_path: Path, text: str,
                                            needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    for args in (["templates", "list"], ["templates", "list", "--json"], ["health"]):
        result = run(sqlite_url, *args, FOLLOWUP_TEMPLATES_FILE=str(path))
        assert result.exit_code == 2, (args, result.output)
        one_error_line(result, needle)


def test_commands_write_nothing_on_invalid_input(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    result = run(sqlite_url, "retry")
    assert result.exit_code == 2
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM scheduled_followups").scalar() == 0
    engine.dispose()

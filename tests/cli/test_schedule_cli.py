"""`followup schedule`, `cancel`, `db` through the CLI: exit codes, JSON, one-line errors."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from followup_cli.cli.app import app
from followup_cli.settings import normalize_database_url

runner = CliRunner()


def run(url: str, *args: str, **env: str):
    result = runner.invoke(app, list(args), env={"DATABASE_URL": url, **env})
    return result


def count(url: str) -> int:
    engine = sa.create_engine(normalize_database_url(url))
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM scheduled_followups")).scalar_one()
    engine.dispose()
    return int(n)


POST = ["schedule", "post-event", "--user-id", "u1", "--conversation-id", "c1",
        "--event-date", "2026-11-14T18:00"]


def test_schedule_json_then_duplicate(db_url: str) -> None:
    first = run(db_url, *POST, "--json")
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert doc["status"] == "scheduled" and doc["id"]
    assert doc["scheduled_at"] == "2026-11-15T18:00:00+00:00"
    again = run(db_url, *POST, "--json")
    assert again.exit_code == 0, again.output
    dup = json.loads(again.stdout)
    assert (dup["status"], dup["id"]) == ("duplicate", doc["id"])


def test_plain_output_without_terminal(db_url: str) -> None:
    result = run(db_url, *POST)
    assert result.exit_code == 0, result.output
    assert "status: scheduled" in result.stdout
    assert "\x1b[" not in result.stdout


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["--event-date", "2026-02-30"], {}, "event_date"),
    (["--event-date", "2026-11-14T18:00", "--delay-hours", "-2"], {}, "--delay-hours"),
    (["--event-date", "2026-11-14T18:00", "--delay-hours", "abc"], {}, "--delay-hours"),
    (["--event-date", "2026-11-14T18:00", "--custom-message", "x" * 2001], {},
     "custom_message"),
    (["--event-date", "2026-11-14T18:00"], {"SCHEDULER_TIMEZONE": "Nowhere/City"},
     "SCHEDULER_TIMEZONE"),
    (["--event-date", "2026-11-14T18:00"], {"FOLLOWUP_MAX_RETRIES": "three"},
     "FOLLOWUP_MAX_RETRIES"),
])
def test_bad_input_exit_2_one_line_nothing_written(db_url: str, args: list[str],
                                                   env: dict[str, str], needle: str) -> None:
    base = ["schedule", "post-event", "--user-id", "u1", "--conversation-id", "c1"]
    result = run(db_url, *base, *args, **env)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert count(db_url) == 0


def test_empty_user_id_is_refused(db_url: str) -> None:
    result = run(db_url, "schedule", "post-event", "--user-id", "", "--conversation-id", "c",
                 "--event-date", "2026-11-14")
    assert result.exit_code == 2 and "user_id" in result.stderr


def test_error_with_json_is_still_one_document(db_url: str) -> None:
    result = run(db_url, "schedule", "post-event", "--user-id", "u", "--conversation-id", "c",
                 "--event-date", "nope", "--json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["error"]["exit_code"] == 2 and "event_date" in doc["error"]["message"]


def test_cap_exits_3(db_url: str) -> None:
    env = {"FOLLOWUP_MAX_PENDING_PER_USER": "1"}
    assert run(db_url, *POST, **env).exit_code == 0
    other = ["schedule", "post-event", "--user-id", "u1", "--conversation-id", "c1",
             "--event-date", "2026-12-24T18:00"]
    result = run(db_url, *other, **env)
    assert result.exit_code == 3, result.output
    assert "cap" in result.stderr
    assert count(db_url) == 1


def test_cancel_exit_codes(db_url: str) -> None:
    fid = json.loads(run(db_url, *POST, "--json").stdout)["id"]
    assert run(db_url, "cancel", fid).exit_code == 0
    again = run(db_url, "cancel", fid, "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["results"][0]["outcome"] == "already_cancelled"
    unknown = run(db_url, "cancel", "no-such-id")
    assert unknown.exit_code == 2 and "no such follow-up" in unknown.stdout
    mixed = run(db_url, "cancel", fid, "no-such-id", "--json")
    assert mixed.exit_code == 2
    assert [r["outcome"] for r in json.loads(mixed.stdout)["results"]] == [
        "already_cancelled", "not_found"]


def test_cancel_argument_errors(db_url: str) -> None:
    assert run(db_url, "cancel").exit_code == 2
    assert run(db_url, "cancel", "x", "--user-id", "u").exit_code == 2
    assert run(db_url, "cancel", "--trigger-type", "post_event").exit_code == 2
    bad_type = run(db_url, "cancel", "--user-id", "u", "--trigger-type", "sms")
    assert bad_type.exit_code == 2 and "--trigger-type" in bad_type.stderr


def test_reengagement_cli(db_url: str) -> None:
    result = run(db_url, "schedule", "reengagement", "--user-id", "u9", "--days-inactive",
                 "45", "--at", "2026-12-01T09:00", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "scheduled"
    assert doc["template_id"] == "reengagement_neutral_emotion"
    assert doc["scheduled_at"] == "2026-12-01T09:00:00+00:00"


def test_db_current_and_upgrade(db_url: str) -> None:
    current = run(db_url, "db", "current", "--json")
    assert current.exit_code == 0, current.output
    assert json.loads(current.stdout)["up_to_date"] is True
    upgraded = run(db_url, "db", "upgrade", "--json")
    assert upgraded.exit_code == 0 and json.loads(upgraded.stdout)["changed"] is False


@pytest.mark.postgres
def test_unmigrated_postgres_exits_4_until_upgraded(pg_empty_url: str) -> None:
    result = run(pg_empty_url, *POST)
    assert result.exit_code == 4, result.output
    assert "followup db upgrade" in result.stderr
    assert run(pg_empty_url, "db", "current").exit_code == 4
    assert run(pg_empty_url, "db", "upgrade").exit_code == 0
    assert run(pg_empty_url, *POST).exit_code == 0


def test_unreachable_database_exits_4_without_traceback() -> None:
    result = run("postgresql://nobody@127.0.0.1:1/none", *POST)
    assert result.exit_code == 4, result.output
    assert "cannot use the database" in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_password_never_printed() -> None:
    result = run("postgresql://app:hunter2@127.0.0.1:1/none", *POST)
    assert result.exit_code == 4
    assert "hunter2" not in result.output and "***" in result.stderr


def test_usage_error_is_exit_2() -> None:
    result = runner.invoke(app, ["schedule", "post-event", "--user-id", "u"])
    assert result.exit_code == 2


def test_usage_error_with_json_still_prints_one_document(db_url: str) -> None:
    result = run(db_url, "schedule", "post-event", "--user-id", "u", "--bogus", "--json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["error"]["exit_code"] == 2 and "--bogus" in doc["error"]["message"]
    # the one line every error gets, not Click's usage block
    assert result.stderr.splitlines() == [f"followup: error: {doc['error']['message']}"]


def test_conflicting_options_with_json_print_one_document(db_url: str) -> None:
    result = run(db_url, "stats", "--format", "prometheus", "--json")
    assert result.exit_code == 2
    assert "exclude" in json.loads(result.stdout)["error"]["message"]


@pytest.mark.postgres
def test_verbose_errors_never_show_bound_values(pg_url: str, pg_engine: sa.Engine) -> None:
    """A database error's text, logged with --verbose, must not carry message content."""
    with pg_engine.begin() as conn:  # a trigger that refuses every insert
        conn.exec_driver_sql(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN RAISE EXCEPTION 'refused'; END$$")
        conn.exec_driver_sql("CREATE TRIGGER refuse BEFORE INSERT ON scheduled_followups "
                             "FOR EACH ROW EXECUTE FUNCTION refuse()")
    # A real process, so the logging that main() sets up writes to the real stderr.
    import os
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.run(
        [str(Path(sys.executable).parent / "followup"), "-v", *POST,
         "--custom-message", "TOPSECRET-MSG"],
        env={**os.environ, "DATABASE_URL": pg_url}, capture_output=True, text=True,
        timeout=60)
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" in proc.stderr and "refused" in proc.stderr  # --verbose shows it
    assert "TOPSECRET" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("args", [
    [b"--user-id", b"u\xff"],
    [b"--custom-message", b"bad \xff bytes"],
    [b"--booking-id", b"\xc3("],
], ids=["user-id", "custom-message", "booking-id"])
def test_bytes_that_are_not_utf8_on_the_command_line_are_exit_2(
        db_url: str, args: list[bytes]) -> None:
    """DESIGN: invalid UTF-8 on the command line is exit 2 with one line, nothing written.
    Python hands such bytes over as lone surrogates: they passed validation and became
    exit 4 "statement timed out" on PostgreSQL, exit 1 or even a stored row on SQLite."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    base = [b"schedule", b"post-event", b"--user-id", b"u1", b"--conversation-id", b"c1",
            b"--event-date", b"2026-11-14T18:00"]
    proc = subprocess.run(
        [os.fsencode(Path(sys.executable).parent / "followup"), *base, *args, b"--json"],
        env={**os.environ, "DATABASE_URL": db_url}, capture_output=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and "is not UTF-8 text" in lines[0], lines
    assert json.loads(proc.stdout)["error"]["exit_code"] == 2
    assert count(db_url) == 0


def test_a_lone_surrogate_from_an_in_process_caller_is_exit_2_too() -> None:
    """Not every lone surrogate comes from argv's bytes (U+DC80-U+DCFF): one outside that
    range made the error line itself raise."""
    result = runner.invoke(app, ["schedule", "post-event", "--user-id", "x\ud800"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == r"followup: error: argument 'x\\ud800' is not UTF-8 text"

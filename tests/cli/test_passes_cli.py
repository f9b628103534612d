"""scan-inactive, schedule import, conversations import and demo through the CLI: exit codes,
one JSON document, one-line errors, stdin."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner, Result

from followup_cli.cli.app import app
from followup_cli.settings import normalize_database_url

runner = CliRunner()

HISTORY = "".join(json.dumps(r) + "\n" for r in [
    {"conversation_id": "c1", "user_id": "u1", "role": "user", "content": "great!",
     "emotion_score": 0.9, "created_at": "2026-09-01T10:00:00Z"},
    {"conversation_id": "c2", "user_id": "u2", "role": "user", "content": "meh",
     "emotion_score": 0.2, "created_at": "2026-09-10T10:00:00Z"},
])


def run(url: str, *args: str, stdin: str | None = None, **env: str) -> Result:
    return runner.invoke(app, list(args), input=stdin, env={"DATABASE_URL": url, **env})


def count(url: str, table: str = "scheduled_followups") -> int:
    engine = sa.create_engine(normalize_database_url(url))
    with engine.connect() as conn:
        n = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    engine.dispose()
    return int(n)


def test_history_import_then_scan_json(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text(HISTORY, encoding="utf-8")
    loaded = run(db_url, "conversations", "import", str(path), "--json")
    assert loaded.exit_code == 0, loaded.output
    assert json.loads(loaded.stdout)["messages_imported"] == 2
    dry = run(db_url, "scan-inactive", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    doc = json.loads(dry.stdout)
    assert (doc["dry_run"], doc["candidates"], doc["scheduled"]) == (True, 2, 2)
    assert count(db_url) == 0
    real = run(db_url, "scan-inactive", "--json")
    doc = json.loads(real.stdout)
    assert doc["scheduled"] == 2 and doc["run_id"]
    assert {s["template_id"] for s in doc["sample"]} == {
        "reengagement_high_emotion", "reengagement_low_emotion"}
    again = run(db_url, "scan-inactive")
    assert again.exit_code == 0, again.output
    assert again.stdout == ""  # under cron a scan that worked says nothing
    assert json.loads(run(db_url, "scan-inactive", "--json").stdout)["scheduled"] == 0
    assert count(db_url) == 2


def test_scan_disabled_says_so(sqlite_url: str) -> None:
    result = run(sqlite_url, "scan-inactive", SCHEDULER_ENABLED="false")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # deliberate, so silent under cron
    import io

    from followup_cli.cli.output import Output
    from followup_cli.cli.pass_report import show_scan
    from followup_cli.service.scanning import ScanResult

    terminal = io.StringIO()
    show_scan(Output(json_mode=False, stream=terminal, terminal=True), ScanResult(enabled=False))
    assert "disabled" in terminal.getvalue()  # a person at a terminal is told
    doc = json.loads(run(sqlite_url, "scan-inactive", "--json",
                         SCHEDULER_ENABLED="false").stdout)
    assert doc["enabled"] is False


def test_scan_bad_limit_is_usage_error(sqlite_url: str) -> None:
    assert run(sqlite_url, "scan-inactive", "--limit", "-1").exit_code == 2


def test_import_from_stdin_csv_and_jsonl(db_url: str) -> None:
    csv_text = ("type,user_id,conversation_id,event_date\n"
                "post_event,u1,c1,2026-11-14T18:00\npost_event,u2,c2,2026-11-14T18:00\n")
    result = run(db_url, "schedule", "import", "-", "--json", stdin=csv_text)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["format"], doc["scheduled"], doc["duplicates"]) == ("csv", 2, 0)
    jsonl = json.dumps({"type": "post_event", "user_id": "u1", "conversation_id": "c1",
                        "event_date": "2026-11-14T20:00"}) + "\n"
    dup = run(db_url, "schedule", "import", "-", "--json", stdin=jsonl)
    assert dup.exit_code == 0, dup.output
    doc = json.loads(dup.stdout)
    assert (doc["format"], doc["scheduled"], doc["duplicates"]) == ("jsonl", 0, 1)
    assert doc["duplicate_rows"][0]["line"] == 1
    plain = run(db_url, "schedule", "import", "-", stdin=jsonl)
    assert "1 duplicates skipped" in plain.stdout


def test_import_bad_row_exit_2_one_line_nothing_written(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(
        '{"type": "post_event", "user_id": "u1", "conversation_id": "c", '
        '"event_date": "2026-11-14"}\n'
        '{"type": "post_event", "user_id": "u2", "conversation_id": "c", '
        '"event_date": "not a date"}\n', encoding="utf-8")
    result = run(db_url, "schedule", "import", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith("followup: error: line 2: event_date")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert count(db_url) == 0
    as_json = run(db_url, "schedule", "import", str(path), "--json")
    assert json.loads(as_json.stdout)["error"]["exit_code"] == 2


def test_import_cap_exit_3(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("type,user_id,conversation_id,event_date\n"
                    + "".join(f"post_event,u1,c1,2026-11-{d:02d}\n" for d in (1, 5, 9)),
                    encoding="utf-8")
    result = run(sqlite_url, "schedule", "import", str(path),
                 FOLLOWUP_MAX_PENDING_PER_USER="2")
    assert result.exit_code == 3
    assert "line 4" in result.stderr
    assert count(sqlite_url) == 0


def test_import_missing_file_exit_2(sqlite_url: str, tmp_path: Path) -> None:
    result = run(sqlite_url, "schedule", "import", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_history_bad_line_exit_2(sqlite_url: str) -> None:
    bad = HISTORY + '{"conversation_id": "c3", "user_id": "u3", "role": "user", ' \
                    '"emotion_score": 7, "created_at": "2026-09-01"}\n'
    result = run(sqlite_url, "conversations", "import", "-", stdin=bad)
    assert result.exit_code == 2
    assert "line 3: emotion_score" in result.stderr
    assert count(sqlite_url, "ai_messages") == 0


def test_demo_json_and_rerun(sqlite_url: str) -> None:
    first = run(sqlite_url, "demo", "--json")
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert doc["delivered"] == 6 and doc["replaced_rows"] == 0
    templates = {d["user_id"]: d["template_id"] for d in doc["deliveries"]}
    assert templates["demo-ana"] == "post_event_high_emotion"
    assert templates["demo-cleo"] == "post_event_low_emotion"
    assert templates["demo-dev"] == "reengagement_high_emotion"
    assert templates["demo-fay"] == "reengagement_neutral_emotion"
    assert doc["not_contacted"] == ["demo-gus"]
    second = run(sqlite_url, "demo")
    assert second.exit_code == 0, second.output
    assert "replaced the previous demo run" in second.stdout
    assert "demo-eli: reengagement_low_emotion" in second.stdout


def test_demo_refuses_postgres_without_yes(pg_url: str) -> None:
    refused = run(pg_url, "demo")
    assert refused.exit_code == 2  # no terminal to ask, no --yes
    assert "--yes" in refused.stderr
    assert count(pg_url, "ai_messages") == 0
    ok = run(pg_url, "demo", "--yes", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["delivered"] == 6


def test_demo_refuses_a_database_with_real_due_followups(sqlite_url: str) -> None:
    run(sqlite_url, "schedule", "post-event", "--user-id", "real", "--conversation-id", "c",
        "--event-date", "2026-01-01T10:00")
    result = run(sqlite_url, "demo")
    assert result.exit_code == 3
    assert "due follow-ups of real users" in result.stderr


def test_demo_leaves_real_users_whose_id_differs_only_in_case(sqlite_url: str) -> None:
    """The demo replaces the rows of users `demo-*` only: SQLite's LIKE ignores letter
    case, and a real customer `Demo-Acme` lost every follow-up, message and conversation."""
    for user in ("Demo-Acme", "DEMO-X"):
        run(sqlite_url, "schedule", "post-event", "--user-id", user, "--conversation-id",
            "c-" + user, "--event-date", "2030-01-01T10:00")
    assert run(sqlite_url, "demo", "--json").exit_code == 0
    assert count(sqlite_url, "scheduled_followups") >= 2
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        users = set(conn.exec_driver_sql(
            "SELECT user_id FROM scheduled_followups WHERE user_id NOT LIKE 'demo-%'"
            " OR substr(user_id, 1, 5) <> 'demo-'").scalars())
    engine.dispose()
    assert users == {"Demo-Acme", "DEMO-X"}


def test_commands_have_help_with_example() -> None:
    for args in (["scan-inactive"], ["schedule", "import"], ["conversations", "import"],
                 ["demo"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example" in result.stdout


def test_import_stdin_bad_row_in_the_middle(db_url: str) -> None:
    good = ('{"type": "post_event", "user_id": "u%d", "conversation_id": "c", '
            '"event_date": "2026-11-14"}\n')
    text = good % 1 + '{"type": "reengagement", "user_id": "u2", "days_inactive": "many"}\n' \
        + good % 3
    result = run(db_url, "schedule", "import", "-", stdin=text)
    assert result.exit_code == 2
    assert "line 2: days_inactive" in result.stderr
    assert count(db_url) == 0

"""`followup run-due` through the CLI: output modes, quiet under cron, exit codes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner, Result

from followup_cli.cli.app import app
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.settings import normalize_database_url
from tests.integration.test_delivery import make_rows

runner = CliRunner()


def run(url: str, *args: str, **env: str) -> Result:
    # With a DATABASE_URL the sender must be chosen explicitly; `log` unless a test says.
    return runner.invoke(app, ["run-due", *args],
                         env={"DATABASE_URL": url, "FOLLOWUP_SENDER": "log", **env})


def seed(url: str, n: int) -> list[str]:
    from datetime import UTC, datetime, timedelta

    rows = make_rows(n, datetime.now(UTC) - timedelta(minutes=5))
    engine = sa.create_engine(normalize_database_url(url))
    with engine.begin() as conn:
        conn.execute(sa.insert(sf), rows)
    engine.dispose()
    return [r["id"] for r in rows]


def statuses(url: str) -> dict[str, str]:
    engine = sa.create_engine(normalize_database_url(url))
    with engine.connect() as conn:
        out = {r[0]: r[1] for r in conn.execute(sa.select(sf.c.id, sf.c.status))}
    engine.dispose()
    return out


def test_json_document_with_log_deliveries(db_url: str) -> None:
    ids = seed(db_url, 3)
    result = run(db_url, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # exactly one document
    assert (doc["claimed"], doc["executed"], doc["retried"], doc["failed"]) == (3, 3, 0, 0)
    assert doc["deferred"] == 0 and isinstance(doc["seconds"], float)
    assert [d["id"] for d in doc["deliveries"]] == ids
    assert doc["deliveries"][0]["message"] == "Hello number 0"
    assert set(statuses(db_url).values()) == {"executed"}


def test_log_sender_prints_json_lines_and_nothing_else_under_cron(db_url: str) -> None:
    ids = seed(db_url, 2)
    result = run(db_url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids


def test_quiet_under_cron_when_all_went_well(db_url: str, tmp_path: Path) -> None:
    seed(db_url, 2)
    out = tmp_path / "out.jsonl"
    result = run(db_url, "--sender", f"file:{out}")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert len(out.read_text().splitlines()) == 2


def test_speaks_up_when_something_failed(db_url: str, tmp_path: Path) -> None:
    [fid] = seed(db_url, 1)
    script = tmp_path / "down.sh"
    script.write_text("#!/bin/sh\ncat >/dev/null\necho 'gateway down' >&2\nexit 3\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    result = run(db_url, "--sender", f"command:{script}")
    assert result.exit_code == 0, result.output  # recorded on the follow-up, not a crash
    # under cron: a retry summary by error kind (cli/pass_report.py), not a line per retry
    assert result.stdout == ("retrying: 1 follow-ups will be retried (command exited with 3: "
                             "1); said again in an hour, or sooner if the error changes\n")
    assert statuses(db_url)[fid] == "pending"


def test_dry_run(db_url: str) -> None:
    ids = seed(db_url, 2)
    result = run(db_url, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "due now: 2" in result.stdout and ids[0] in result.stdout
    doc = json.loads(run(db_url, "--dry-run", "--json").stdout)
    assert doc["due"] == 2 and doc["dry_run"] is True
    assert set(statuses(db_url).values()) == {"pending"}


def test_disabled_says_so(db_url: str) -> None:
    seed(db_url, 1)
    result = run(db_url, SCHEDULER_ENABLED="false")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # deliberate: cron must not mail it every minute
    doc = json.loads(run(db_url, "--json", SCHEDULER_ENABLED="false").stdout)
    assert doc["disabled"] is True and doc["claimed"] == 0
    assert set(statuses(db_url).values()) == {"pending"}


def test_outside_the_window_defers(db_url: str) -> None:
    seed(db_url, 2)
    # a one-minute window twelve hours away from now (UTC)
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M")
    end = (datetime.now(UTC) + timedelta(hours=12, minutes=1)).strftime("%H:%M")
    doc = json.loads(run(db_url, "--json", FOLLOWUP_SEND_WINDOW=f"{start}-{end}").stdout)
    assert doc["window_open"] is False and doc["deferred"] == 2 and doc["claimed"] == 0


def test_bad_option_is_exit_2_with_one_line(sqlite_url: str) -> None:
    result = run(sqlite_url, "--concurrency", "0")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "--concurrency" in result.stderr
    assert "Traceback" not in result.output


def test_bad_sender_is_exit_2(sqlite_url: str) -> None:
    result = run(sqlite_url, "--sender", "carrier-pigeon")
    assert result.exit_code == 2
    assert "FOLLOWUP_SENDER" in result.stderr


def test_unreachable_database_is_exit_4() -> None:
    result = runner.invoke(app, ["run-due", "--json"],
                           env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere",
                                "FOLLOWUP_SENDER": "log"})
    assert result.exit_code == 4, result.output
    doc = json.loads(result.stdout)
    assert doc["error"]["exit_code"] == 4
    assert "Traceback" not in result.output


def test_terminal_gets_a_table_even_when_all_went_well() -> None:
    import io

    from followup_cli.cli.delivery_cmds import _show
    from followup_cli.cli.output import Output
    from followup_cli.service.delivery import PassResult

    stream = io.StringIO()
    _show(Output(json_mode=False, stream=stream, terminal=True),
          PassResult(run_id="r1", claimed=4, executed=4, seconds=0.2))
    text = stream.getvalue()
    assert "run-due" in text and "executed" in text and "4" in text

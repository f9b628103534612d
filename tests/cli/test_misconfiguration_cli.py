"""Issue 11, problems 1 and 2 through the CLI: a misspelled setting is named on every
command, a pass on the fallback database says so under cron, and no sender is no delivery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from followup_cli.cli.app import app
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.settings import normalize_database_url
from tests.cli.test_run_due_cli import seed

runner = CliRunner()


def invoke(args: list[str], **env: str) -> Any:
    return runner.invoke(app, args, env=env)


def statuses(url: str) -> set[str]:
    engine = sa.create_engine(normalize_database_url(url))
    with engine.connect() as conn:
        found = {r[0] for r in conn.execute(sa.select(sf.c.status))}
    engine.dispose()
    return found


@pytest.mark.parametrize("args", [
    ["run-due", "--json"], ["scan-inactive"], ["health"], ["list"], ["stats"],
    ["templates", "list"], ["db", "current"],
])
def test_a_misspelled_setting_is_named_on_every_command(sqlite_url: str,
                                                         args: list[str]) -> None:
    result = invoke(args, DATABASE_URL=sqlite_url, FOLLOWUP_SENDER="log",
                    FOLLOWUP_SENDR="webhook:https://example.com/x")
    warnings = [line for line in result.stderr.splitlines() if "FOLLOWUP_SENDR" in line]
    assert warnings == ["followup: warning: FOLLOWUP_SENDR is not a setting (ignored): did "
                        "you mean FOLLOWUP_SENDER?"], result.stderr


def test_the_typo_of_the_issue_is_no_longer_silent(tmp_path: Path) -> None:
    """DATABSE_URL in a crontab: every pass ran on a fresh embedded database, exit 0, no
    word. Now two lines say so: the typo, and the fallback."""
    result = invoke(["run-due"], XDG_DATA_HOME=str(tmp_path),
                    DATABSE_URL="postgresql://app:secret@db:5432/app")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == ("followup: warning: DATABSE_URL is not a setting (ignored): did you "
                        "mean DATABASE_URL?")
    assert lines[1].startswith("followup: warning: DATABASE_URL is not set: this pass uses "
                               f"the embedded database sqlite:///{tmp_path}")
    assert len(lines) == 2 and "secret" not in result.output


@pytest.mark.parametrize("args", [["run-due"], ["scan-inactive"], ["scan-inactive",
                                                                   "--dry-run"]])
def test_a_pass_on_the_fallback_database_says_so_without_a_terminal(
        tmp_path: Path, args: list[str]) -> None:
    fallback = invoke(args, XDG_DATA_HOME=str(tmp_path))
    assert fallback.exit_code == 0, fallback.output
    assert "DATABASE_URL is not set" in fallback.stderr
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert invoke(["db", "upgrade"], DATABASE_URL=url).exit_code == 0  # a dry run creates none
    explicit = invoke(args, DATABASE_URL=url, FOLLOWUP_SENDER="log")
    assert explicit.exit_code == 0, explicit.output
    assert explicit.stderr == ""


def test_other_commands_on_the_fallback_database_do_not_warn(tmp_path: Path) -> None:
    result = invoke(["list"], XDG_DATA_HOME=str(tmp_path))
    assert result.exit_code == 0 and result.stderr == ""


def test_run_due_without_a_sender_claims_nothing_and_exits_2(db_url: str) -> None:
    """Problem 2: with no FOLLOWUP_SENDER, run-due on PostgreSQL marked follow-ups executed
    and printed their text on stdout."""
    seed(db_url, 3)
    result = invoke(["run-due"], DATABASE_URL=db_url)
    assert result.exit_code == 2
    assert result.stdout == ""  # no message text
    assert result.stderr.splitlines() == [
        "followup: error: FOLLOWUP_SENDER: not set; with DATABASE_URL set, choose the "
        "delivery channel explicitly: log, file:PATH, webhook:URL or command:CMD"]
    assert statuses(db_url) == {"pending"}  # nothing claimed
    as_json = invoke(["run-due", "--json"], DATABASE_URL=db_url)
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"]["exit_code"] == 2
    # log is fine once chosen
    chosen = invoke(["run-due", "--json"], DATABASE_URL=db_url, FOLLOWUP_SENDER="log")
    assert chosen.exit_code == 0 and json.loads(chosen.stdout)["executed"] == 3


def test_the_embedded_database_still_defaults_to_log(tmp_path: Path) -> None:
    scheduled = invoke(["schedule", "reengagement", "--user-id", "u1", "--json"],
                       XDG_DATA_HOME=str(tmp_path))
    assert scheduled.exit_code == 0, scheduled.output
    result = invoke(["run-due", "--json"], XDG_DATA_HOME=str(tmp_path))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["executed"] == 1 and len(doc["deliveries"]) == 1


def test_demo_passes_its_own_sender(sqlite_url: str) -> None:
    result = invoke(["demo", "--json"], DATABASE_URL=sqlite_url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["delivered"] > 0

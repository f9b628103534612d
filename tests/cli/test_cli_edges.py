"""Issue 11 problems 8 and 9: typed numeric options, one error shape for every error,
`-v` before or after the command, shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from followup_cli.cli import common, delivery_cmds
from followup_cli.cli.app import app
from tests.cli.test_help import COMMANDS

runner = CliRunner()

# Every numeric option, with a value Click must refuse before any service runs.
NUMERIC = [
    (["run-due", "--batch-size"], ["abc", "0", "10001"]),
    (["run-due", "--limit"], ["abc", "0", "1.5"]),
    (["run-due", "--concurrency"], ["abc", "0", "65"]),
    (["run-due", "--time-budget"], ["abc", "0", "-1", "nan", "inf"]),
    (["schedule", "post-event", "--user-id", "u", "--conversation-id", "c", "--event-date",
      "2026-11-14", "--delay-hours"], ["abc", "-1", "nan", "1e9"]),
    (["schedule", "reengagement", "--user-id", "u", "--days-inactive"], ["abc", "-1", "2.5"]),
    (["templates", "preview", "post_event_neutral_emotion", "--days-inactive"],
     ["abc", "-1"]),
    (["list", "--limit"], ["abc", "-1"]),
    (["stats", "--days"], ["abc", "0", "36501"]),
    (["cleanup", "--dry-run", "--older-than-days"], ["abc", "-1", "nan"]),
    (["scan-inactive", "--limit"], ["abc", "-1"]),
]
CASES = [(args, bad) for args, values in NUMERIC for bad in values]


@pytest.mark.parametrize(("args", "bad"), CASES,
                         ids=[f"{' '.join(a[:1] + a[-1:])}={b}" for a, b in CASES])
def test_a_bad_number_is_one_line_exit_2_and_one_json_document(
        sqlite_url: str, args: list[str], bad: str) -> None:
    env = {"DATABASE_URL": sqlite_url, "FOLLOWUP_SENDER": "log"}
    result = runner.invoke(app, [*args, bad], env=env)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"followup: error: Invalid value for '{args[-1]}'"), line
    assert result.stdout == "" and "╭" not in result.output
    as_json = runner.invoke(app, [*args, bad, "--json"], env=env)
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout) == {"error": {"message": line.removeprefix(
        "followup: error: "), "exit_code": 2}}


def test_numbers_in_range_reach_the_service(sqlite_url: str) -> None:
    env = {"DATABASE_URL": sqlite_url, "FOLLOWUP_SENDER": "log"}
    result = runner.invoke(app, ["run-due", "--json", "--batch-size", "10000", "--limit", "1",
                                 "--concurrency", "64", "--time-budget", "0.5"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stopped"] == "drained"


@pytest.mark.parametrize("args", [["nosuch"], ["list", "--bogus"], ["show"],
                                  ["schedule", "post-event", "--user-id", "u"],
                                  ["list", "--status", "done"]])
def test_every_usage_error_has_the_one_error_shape(sqlite_url: str, args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--json"], env={"DATABASE_URL": sqlite_url})
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert set(doc) == {"error"} and set(doc["error"]) == {"message", "exit_code"}
    assert result.stderr.splitlines() == [f"followup: error: {doc['error']['message']}"]
    plain = runner.invoke(app, args, env={"DATABASE_URL": sqlite_url})
    assert plain.stdout == "" and len(plain.stderr.splitlines()) == 1


@pytest.mark.parametrize("env", [{"DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/none"},
                                 {"SCHEDULER_TIMEZONE": "Mars/Olympus"}])
def test_database_and_settings_errors_have_the_same_shape(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["list", "--json"], env={"FOLLOWUP_SENDER": "log", **env})
    assert result.exit_code in (2, 4)
    doc = json.loads(result.stdout)
    assert doc["error"]["exit_code"] == result.exit_code
    assert result.stderr.splitlines() == [f"followup: error: {doc['error']['message']}"]


def test_no_arguments_still_prints_the_help() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2 and "run-due" in result.stdout


def test_the_cli_spells_the_schema_and_engine_values() -> None:
    from followup_cli.db.schema import STATUSES, TRIGGER_TYPES
    from followup_cli.service import delivery

    assert tuple(common.Status) == STATUSES
    assert tuple(common.TriggerType) == TRIGGER_TYPES
    assert delivery_cmds.MAX_BATCH == delivery.MAX_BATCH
    assert delivery_cmds.MAX_CONCURRENCY == delivery.MAX_CONCURRENCY


# --- -v before or after the command -----------------------------------------------------

@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_takes_verbose(path: tuple[str, ...], command: Any) -> None:
    result = runner.invoke(app, [*path, "-v", "--help"])
    assert result.exit_code == 0, result.output
    assert "--verbose" in result.stdout


def followup(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A real process: logging is set up by the console entry point, as under cron."""
    env = {**os.environ, "DATABASE_URL": url, "FOLLOWUP_SENDER": "log"}
    return subprocess.run([sys.executable, "-m", "followup_cli", *args], env=env, text=True,
                          capture_output=True, timeout=60)


@pytest.mark.parametrize("args", [["-v", "run-due"], ["run-due", "-v"],
                                  ["run-due", "--verbose", "--json"]])
def test_verbose_after_the_command_logs_like_before(sqlite_url: str, args: list[str]) -> None:
    result = followup(sqlite_url, *args)
    assert result.returncode == 0, result.stderr
    assert "followup.delivery: run-due" in result.stderr


def test_verbose_after_the_command_adds_the_traceback(sqlite_url: str) -> None:
    quiet = followup(sqlite_url, "show", "no-such-follow-up")
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert quiet.stderr.splitlines() == [
        "followup: error: no follow-up with id 'no-such-follow-up'"]
    loud = followup(sqlite_url, "show", "no-such-follow-up", "-v")
    assert loud.returncode == 2 and "Traceback" in loud.stderr


# --- shell completion -------------------------------------------------------------------

def test_show_completion_prints_a_script() -> None:
    result = runner.invoke(app, ["--show-completion", "bash"])
    assert result.exit_code == 0, result.output
    assert "_FOLLOWUP_COMPLETE" in result.stdout and "complete" in result.stdout


def test_install_completion_writes_the_script(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--install-completion", "bash"], env={"HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "_FOLLOWUP_COMPLETE" in (tmp_path / ".bash_completions" / "followup.sh").read_text()
    assert "followup.sh" in (tmp_path / ".bashrc").read_text()


def test_completion_completes_commands_and_choices() -> None:
    def complete(words: str) -> list[str]:
        result = runner.invoke(app, [], prog_name="followup", env={
            "_FOLLOWUP_COMPLETE": "complete_bash", "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))})
        return result.stdout.split()

    assert "run-due" in complete("followup ru")
    assert set(complete("followup list --status ")) >= {"pending", "failed"}


def test_completion_options_are_on_the_root_only() -> None:
    root = typer.main.get_command(app)
    names = {o for p in root.params for o in getattr(p, "opts", [])}
    assert {"--install-completion", "--show-completion", "--verbose"} <= names

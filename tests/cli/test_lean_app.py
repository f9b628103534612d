"""`main` builds the command line with only the command it was asked for (Typer evaluates
every registered command's signature first, about 30 ms of each cron process); whatever
that command prints, help and errors included, is what the whole app prints."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from followup_cli.cli.app import _named_command, app, app_for

NAMES = sorted([c.name for c in app.registered_commands if c.name] +
               [g.name for g in app.registered_groups if g.name])


def test_every_command_has_a_name_to_be_found_by() -> None:
    assert len(NAMES) == len(app.registered_commands) + len(app.registered_groups)
    assert {"schedule", "run-due", "health", "db", "templates"} <= set(NAMES)


@pytest.mark.parametrize("args, name", [
    (["run-due"], "run-due"),
    (["-v", "run-due", "--json"], "run-due"),
    (["--database-url", "sqlite:///x.db", "--timezone", "UTC", "schedule", "post-event"],
     "schedule"),
    (["--database-url=sqlite:///x.db", "health"], "health"),
    (["--verbose", "db", "current"], "db"),
    (["--help"], None), (["--version"], None), ([], None), (["--bogus", "health"], None),
    (["--database-url"], None),
])
def test_the_named_command_is_found_after_the_root_options(args: list[str],
                                                          name: str | None) -> None:
    assert _named_command(args) == name


def _lean(name: str) -> typer.Typer:
    lean = app_for([name])
    assert lean is not app
    assert len(lean.registered_commands) + len(lean.registered_groups) == 1
    return lean


def _subcommands(name: str) -> list[list[str]]:
    """`[name]`, and `[name, sub]` for each command of a group."""
    groups = [g for g in app.registered_groups if g.name == name]
    if not groups or groups[0].typer_instance is None:
        return [[name]]
    return [[name]] + [[name, c.name] for c in groups[0].typer_instance.registered_commands
                       if c.name]


@pytest.mark.parametrize("name", NAMES)
def test_a_lean_app_prints_the_same_help(name: str) -> None:
    runner = CliRunner()
    lean = _lean(name)
    for words in _subcommands(name):
        whole = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "100"})
        alone = runner.invoke(lean, [*words, "--help"], env={"COLUMNS": "100"})
        assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output), words


@pytest.mark.parametrize("args", [["run-due", "--no-such-option"], ["schedule", "nope"],
                                  ["health", "extra"]])
def test_a_lean_app_reports_a_usage_error_the_same_way(args: list[str]) -> None:
    runner = CliRunner()
    whole = runner.invoke(app, args)
    alone = runner.invoke(app_for(args), args)
    assert alone.exit_code == whole.exit_code == 2
    assert alone.output == whole.output


def test_help_a_mistyped_command_and_completion_get_the_whole_app(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert app_for(["--help"]) is app
    assert app_for(["schedul"]) is app  # "Did you mean 'schedule'?" needs every name
    monkeypatch.setenv("_FOLLOWUP_COMPLETE", "complete_bash")
    assert app_for(["schedule"]) is app


def test_a_lean_app_takes_the_root_options(tmp_path: object) -> None:
    """--database-url before the command reaches it (the root callback is kept)."""
    missing = f"sqlite:///{tmp_path}/absent/followup.db"
    args = ["--database-url", missing, "-v", "health", "--json"]
    runner = CliRunner()
    whole = runner.invoke(app, args)
    alone = runner.invoke(app_for(args), args)
    assert alone.exit_code == whole.exit_code == 4
    assert "absent/followup.db" in alone.output
    assert alone.output.splitlines()[-1] == whole.output.splitlines()[-1]

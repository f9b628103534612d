"""Every command documents itself: help with an example, a --json flag, and a row in the
README's command table (every option is in the generated CLI reference:
tests/docs/test_cli_reference.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from followup_cli.cli.app import app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _leaves(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return [(path, command)]
    found = []
    for name, sub in sorted(subcommands.items()):
        found += _leaves(sub, (*path, name))
    return found


COMMANDS = _leaves(typer.main.get_command(app))
IDS = [" ".join(path) for path, _ in COMMANDS]


def test_the_walk_finds_the_commands() -> None:
    assert {"schedule post-event", "cancel", "db upgrade"} <= set(IDS)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_command_help_has_an_example(path: tuple[str, ...], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`followup {' '.join(path)} --help` has no example"
    assert "followup " + path[0] in result.output


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_command_takes_json(path: tuple[str, ...], command: Any) -> None:
    names = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert "--json" in names, f"followup {' '.join(path)} has no --json"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_command_is_in_the_readme(path: tuple[str, ...], command: Any) -> None:
    assert f"followup {' '.join(path)}" in README, (
        f"README has no example of `followup {' '.join(path)}`")

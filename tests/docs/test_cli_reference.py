"""The CLI reference (docs/reference/cli.md) cannot drift from the commands' own --help.

Regenerate it with `python scripts/cli_reference.py`.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from typer.testing import CliRunner

from followup_cli.cli.app import app
from scripts import cli_reference

REFERENCE = cli_reference.REFERENCE.read_text(encoding="utf-8") \
    if cli_reference.REFERENCE.exists() else ""
ENTRIES = cli_reference.entries()
# An option as --help shows it: `--name` or `-n`, not part of a longer word.
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def test_the_committed_reference_is_what_the_generator_writes_now() -> None:
    assert cli_reference.render() == REFERENCE, (
        "docs/reference/cli.md is stale: run `python scripts/cli_reference.py`")


def test_check_mode_tells_a_stale_page(tmp_path: Any, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    page = tmp_path / "cli.md"
    monkeypatch.setattr(cli_reference, "REFERENCE", page)
    monkeypatch.setattr(cli_reference, "ROOT", tmp_path)
    page.write_text("# an old page\n", encoding="utf-8")
    assert cli_reference.main(["--check"]) == 1
    assert cli_reference.main([]) == 0
    assert cli_reference.main(["--check"]) == 0


def _section(name: str) -> str:
    """The reference's section of one command: from its heading to the next heading of a
    command."""
    heading = re.search(rf"^#+ {re.escape(name)}( \(global options\))?$", REFERENCE,
                        re.MULTILINE)
    assert heading, f"the CLI reference has no section for `{name}`"
    rest = REFERENCE[heading.end():]
    following = re.search(r"^#+ followup", rest, re.MULTILINE)
    return rest[:following.start()] if following else rest


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_every_command_and_option_of_its_help_is_in_the_reference(entry: Any) -> None:
    result = CliRunner().invoke(app, [*entry.path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    section = _section(entry.name)
    shown = set(OPTION.findall(result.output))
    declared = {opt for param in entry.command.get_params(entry.ctx)
                if param.get_help_record(entry.ctx) is not None
                for opt in [*param.opts, *param.secondary_opts] if opt.startswith("-")}
    assert declared <= shown, f"`{entry.name} --help` does not show {declared - shown}"
    missing = sorted(option for option in shown if option not in section)
    assert not missing, f"{entry.name}: {missing} shown by --help, not in its reference section"
    for param in entry.command.get_params(entry.ctx):
        record = param.get_help_record(entry.ctx)
        if record is not None and param.param_type_name == "argument":
            assert f"`{record[0]}`" in section, f"{entry.name}: argument {record[0]} missing"


def test_every_command_is_listed_and_has_its_section() -> None:
    leaves = [e for e in ENTRIES[1:] if not e.is_group]
    assert len(leaves) >= 20
    for entry in leaves:
        assert f"[`{entry.name}`](#{entry.name.replace(' ', '-')})" in REFERENCE
        assert _section(entry.name)

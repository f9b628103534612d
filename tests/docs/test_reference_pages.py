"""The hand-written reference pages name everything the code has: every setting, every
exit code, every table, column, index and constraint, every top-level `--json` field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from followup_cli.cli.app import app
from followup_cli.db.schema import metadata
from followup_cli.errors import ExitCode
from followup_cli.settings import SETTINGS_DOC
from tests.docs.examples import FAILED_IDS, FILES, PENDING_ID, ROOT, seed

REFERENCE = ROOT / "docs" / "reference"


def _page(name: str) -> str:
    return (REFERENCE / name).read_text(encoding="utf-8")


def test_every_setting_has_a_row_in_the_settings_page() -> None:
    page = _page("settings.md")
    missing = [name for name, _, _ in SETTINGS_DOC if f"| `{name}` |" not in page]
    assert not missing, f"docs/reference/settings.md has no row for {missing}"


def test_every_exit_code_has_a_row_in_the_exit_codes_page() -> None:
    page = _page("exit-codes.md")
    missing = [int(code) for code in [*ExitCode, 130, 143] if f"\n| {int(code)} |" not in page]
    assert not missing, f"docs/reference/exit-codes.md has no row for {missing}"


def test_every_table_column_index_and_constraint_is_on_the_tables_page() -> None:
    page = _page("schema.md")
    names: list[str] = []
    for table in metadata.tables.values():
        names.append(table.name)
        names += [column.name for column in table.columns]
        names += [str(index.name) for index in table.indexes]
        names += [str(c.name) for c in table.constraints
                  if isinstance(c, sa.CheckConstraint) and c.name]
    missing = sorted({name for name in names if f"`{name}`" not in page})
    assert not missing, f"docs/reference/schema.md does not name {missing}"


def _json_sections() -> dict[str, str]:
    page = _page("json.md")
    parts = re.split(r"^## (followup [a-z -]+)$", page, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


# (the section, the command with --json) run in the example world
COMMANDS = [
    # the passes and monitors first: the world is healthy then
    ("followup scan-inactive", "scan-inactive"),
    ("followup scan-inactive", "scan-inactive --dry-run"),
    ("followup run-due", "run-due"),
    ("followup run-due", "run-due --dry-run"),
    ("followup health", "health"),
    ("followup stats", "stats"),
    ("followup schedule post-event", "schedule post-event --user-id u42 --conversation-id c7 "
                                     "--event-date 2026-11-14T18:00"),
    ("followup schedule post-event", "schedule reengagement --user-id u42"),
    ("followup schedule import", "schedule import bookings.jsonl"),
    ("followup conversations import", "conversations import history.jsonl"),
    ("followup cancel", f"cancel {PENDING_ID}"),
    ("followup cleanup", "cleanup --dry-run"),
    ("followup list", "list"),
    ("followup show", f"show {PENDING_ID}"),
    ("followup retry", f"retry {FAILED_IDS[0]}"),
    ("followup retry", "retry --failed"),
    ("followup forget-user", "forget-user u43 --yes"),
    ("followup templates list", "templates list"),
    ("followup templates preview", "templates preview post_event_high_emotion"),
    ("followup templates explain", "templates explain --conversation-id c7"),
    ("followup db upgrade", "db upgrade"),
    ("followup db current", "db current"),
    ("followup db reencrypt", "db reencrypt --dry-run"),
]


@pytest.fixture
def world_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'world.db'}"
    seed(url)
    for name, text in FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return url


def test_every_json_field_is_on_the_json_page(world_url: str) -> None:
    sections = _json_sections()
    env = {"DATABASE_URL": world_url, "FOLLOWUP_SENDER": "log",
           "FOLLOWUP_ENCRYPTION_KEY": "x9hJlUj4Kt0d8o9Y1n4Zrj3b3wYQ2dBl9yC9mN6jzfs="}
    undocumented: dict[str, list[str]] = {}
    for section, command in COMMANDS:
        result = CliRunner().invoke(app, [*command.split(), "--json"], env=env)
        # a dry run of reencrypt that finds rows to rewrite exits 1 ("complete": false)
        ok = (0, 1) if command == "db reencrypt --dry-run" else (0,)
        assert result.exit_code in ok, f"followup {command}: {result.output}"
        document: dict[str, Any] = json.loads(result.stdout)
        text = sections[section]
        missing = [key for key in document if f"`{key}`" not in text]
        if missing:
            undocumented[f"followup {command}"] = missing
    assert not undocumented, f"docs/reference/json.md does not name {undocumented}"


def test_the_json_page_has_a_section_for_every_command() -> None:
    sections = set(_json_sections())
    leaves = {section for section, _ in COMMANDS} | {
        "followup serve", "followup demo", "followup db grants"}
    assert leaves <= sections, f"missing sections: {leaves - sections}"

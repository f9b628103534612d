"""Issue 11 problem 5: long work draws a progress bar on a terminal, and nothing of it
reaches cron, a pipe or --json."""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from followup_cli.cli import common
from followup_cli.cli.app import app
from followup_cli.cli.output import Output

runner = CliRunner()
BAR = "━"  # rich's bar segments (tables use it too: labels tell bars apart)


def rows(n: int) -> str:
    return "".join(json.dumps({
        "type": "reengagement", "user_id": f"u{i}", "at": "2026-11-01T09:00:00Z"}) + "\n"
        for i in range(n))


def history(n: int) -> str:
    return "".join(json.dumps({
        "conversation_id": f"c{i}", "user_id": f"h{i}", "role": "user", "content": "hi",
        "emotion_score": 0.5, "created_at": "2026-09-01T10:00:00Z"}) + "\n" for i in range(n))


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command's Output believes it writes to an 80-column terminal."""
    monkeypatch.setattr(common, "Output", functools.partial(Output, terminal=True, width=80))


def run(url: str, *args: str) -> Result:
    return runner.invoke(app, list(args), env={"DATABASE_URL": url, "FOLLOWUP_SENDER": "log"})


# --- the helper -------------------------------------------------------------------------

def test_the_helper_draws_a_bar_on_a_terminal_only() -> None:
    shown = io.StringIO()
    with Output(json_mode=False, stream=shown, terminal=True, width=80).progress(
            "importing") as progress:
        progress(0, None)  # total unknown: a pulsing bar
        progress(500, 1000)
        progress(1000, 1000)
        progress(1000, None)  # a second phase of unknown length: pulsing again
    assert "importing" in shown.getvalue() and BAR in shown.getvalue()
    assert "1000/?" in shown.getvalue()  # the last frame drawn: total unknown again
    for out in (Output(json_mode=False, stream=io.StringIO(), terminal=False),
                Output(json_mode=True, stream=io.StringIO(), terminal=True)):
        with out.progress("importing") as progress:
            progress(1, None)
            progress(5, 10)
        assert out.stream.getvalue() == ""  # type: ignore[union-attr]


# --- the commands -----------------------------------------------------------------------

def seed_history(url: str, tmp_path: Path, n: int) -> Path:
    path = tmp_path / "history.jsonl"
    path.write_text(history(n), encoding="utf-8")
    return path


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_imports_and_scan_draw_a_bar_on_a_terminal(db_url: str, tmp_path: Path,
                                                   terminal: None) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(rows(3000), encoding="utf-8")
    imported = run(db_url, "schedule", "import", str(path))
    assert imported.exit_code == 0, imported.output
    assert "scheduling" in imported.stdout and BAR in imported.stdout  # label and bar
    assert "3000 scheduled" in imported.stdout
    loaded = run(db_url, "conversations", "import", str(seed_history(db_url, tmp_path, 3000)))
    assert loaded.exit_code == 0, loaded.output
    assert "importing messages" in loaded.stdout and BAR in loaded.stdout
    scanned = run(db_url, "scan-inactive")
    assert scanned.exit_code == 0, scanned.output
    assert "scheduling re-engagements" in scanned.stdout  # the bar's label


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_dry_scan_draws_a_bar_too(db_url: str, tmp_path: Path, terminal: None) -> None:
    run(db_url, "conversations", "import", str(seed_history(db_url, tmp_path, 3000)))
    scanned = run(db_url, "scan-inactive", "--dry-run")
    assert scanned.exit_code == 0, scanned.output
    assert "finding inactive users" in scanned.stdout


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_bar_without_a_terminal_or_with_json(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(rows(3000), encoding="utf-8")
    imported = run(db_url, "schedule", "import", str(path))
    assert imported.exit_code == 0 and BAR not in imported.output
    assert "\x1b[" not in imported.output
    loaded = run(db_url, "conversations", "import", str(seed_history(db_url, tmp_path, 3000)),
                 "--json")
    json.loads(loaded.stdout)  # one document, nothing else
    assert BAR not in loaded.output
    scanned = run(db_url, "scan-inactive")
    assert scanned.exit_code == 0 and BAR not in scanned.output
    assert "scheduling re-engagements" not in scanned.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_run_due_hands_the_engine_a_progress_callback(db_url: str, terminal: None,
                                                      monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    """The engine's rewrite calls `progress`; the CLI passes one whenever it is taken."""
    from followup_cli.service import delivery

    seen: list[Any] = []

    def engine(settings: Any, options: Any = None, *, progress: Any = None,
               **_: Any) -> Any:
        seen.append(progress)
        for done in range(0, 3001, 1000):
            progress(done, 3000)
        return delivery.PassResult(claimed=3000, executed=3000)

    monkeypatch.setattr(delivery, "run_due_for", engine)
    result = run(db_url, "run-due")
    assert result.exit_code == 0, result.output
    assert callable(seen[0])
    assert "delivering" in result.stdout and BAR in result.stdout

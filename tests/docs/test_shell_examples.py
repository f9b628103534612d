"""Every shell example in the documentation runs (or says why it cannot run here).

The blocks, the markers and the example world are described in tests/docs/examples.py.
Each runnable block gets a fresh copy of the world (and, for `runs-on: postgresql`, a
fresh PostgreSQL database of it) and must exit 0, command by command.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from followup_cli.cli.app import app
from tests.docs.examples import (
    FILES,
    KNOWN_DIRECTIVES,
    ROOT,
    Block,
    all_blocks,
    in_process_argv,
    parse,
    seed,
    strip_comment,
)

BLOCKS = all_blocks()
SHELL_BLOCKS = [b for b in BLOCKS if b.is_shell]
RUNNABLE = [b for b in SHELL_BLOCKS if "not-runnable" not in b.directives]
SHELL_BUILTINS = {"{", "}", "cd", "export", "set", "umask", "echo", "test", "[", "true"}
runner = CliRunner()


def test_the_examples_are_found() -> None:
    ids = {b.id.split(":")[0] for b in RUNNABLE}
    assert {"README.md", "docs/getting-started.md", "docs/troubleshooting.md"} <= ids
    assert len(RUNNABLE) >= 40, [b.id for b in RUNNABLE]
    tour = next(b for b in RUNNABLE if b.id.startswith("README.md")
                and "followup run-due" in b.text)
    assert in_process_argv(tour.commands()[0]) is not None


def test_markers_are_known_and_a_block_not_run_says_why() -> None:
    for block in BLOCKS:
        unknown = set(block.directives) - KNOWN_DIRECTIVES
        assert not unknown, f"{block.id}: unknown marker {unknown} (known: {KNOWN_DIRECTIVES})"
        reason = block.directives.get("not-runnable")
        if reason is not None:
            assert block.is_shell, f"{block.id}: not-runnable on a {block.lang!r} block"
            assert len(reason) >= 10, f"{block.id}: say why it cannot run here"
        if "runs-on" in block.directives:
            assert block.directives["runs-on"] == "postgresql", block.id
        if "file" in block.directives:
            assert not block.is_shell and "/" not in block.directives["file"], block.id


def _env(home: Path, **extra: str | None) -> dict[str, str | None]:
    """CliRunner's environment: the world's home (so the embedded database is the
    world's), nothing of the operator's; None removes a variable."""
    return {"HOME": str(home), "XDG_DATA_HOME": None, "DATABASE_URL": None, **extra}


def _invoke(args: list[str], env: dict[str, str | None]) -> Any:
    return runner.invoke(app, args, env=env)


def _passes(env: dict[str, str | None]) -> None:
    """A scan and a delivery pass, so that health sees a running scheduler."""
    for args in (["scan-inactive"], ["run-due"]):
        result = _invoke(args, env)
        assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example world on the embedded database, in a directory to copy per block."""
    directory = tmp_path_factory.mktemp("world")
    database = directory / "home" / ".local" / "share" / "followup" / "followup.db"
    database.parent.mkdir(parents=True)
    seed(f"sqlite:///{database}")
    for name, text in FILES.items():
        (directory / name).write_text(text, encoding="utf-8")
    _passes(_env(directory / "home"))
    return directory


def _page_files(block: Block, directory: Path) -> None:
    """The `file:` blocks of the page above this block."""
    for earlier in parse(block.path):
        if earlier.line < block.line and "file" in earlier.directives:
            (directory / earlier.directives["file"]).write_text(earlier.text, encoding="utf-8")


def _run_in_process(block: Block, plans: list[tuple[dict[str, str], list[str]]],
                    env: dict[str, str | None]) -> None:
    for command, (assignments, args) in zip(block.commands(), plans, strict=True):
        result = _invoke(args, {**env, **assignments})
        assert result.exit_code == 0, (
            f"{block.id}: `{command}` exited {result.exit_code}\n{result.output}")


def _programs(command: str) -> list[str]:
    """The programs a command line starts (enough to skip a block whose tool is missing)."""
    lexer = shlex.shlex(strip_comment(command), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError:
        return []
    found, expect = [], True
    for token in tokens:
        if all(c in "|&;()" for c in token):
            expect = not token.endswith(")")  # `$(date ...)x`: the word goes on
        elif expect and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", token):
            found.append(token)
            expect = False
    return found


def _run_in_bash(block: Block, env: dict[str, str | None], directory: Path) -> None:
    for command in block.commands():
        for program in _programs(command):
            if program not in SHELL_BUILTINS and shutil.which(program) is None:
                pytest.skip(f"{block.id}: {program} is not installed here")
    script = "\n".join(block.commands()) if block.lang == "console" else block.text
    environ = {k: v for k, v in os.environ.items() if k != "XDG_DATA_HOME"}
    environ.update({k: v for k, v in env.items() if v is not None})
    for name in [k for k, v in env.items() if v is None]:
        environ.pop(name, None)
    # The followup (and python) of this test run come first on the PATH.
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=directory,
                          env=environ, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, (
        f"{block.id} exited {done.returncode}\n{script}\n{done.stdout}\n{done.stderr}")


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_shell_example_runs(block: Block, world: Path, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch,
                            request: pytest.FixtureRequest) -> None:
    directory = tmp_path / "example"
    shutil.copytree(world, directory)
    env = _env(directory / "home")
    if block.directives.get("runs-on") == "postgresql":
        url = str(request.getfixturevalue("pg_url"))
        seed(url)
        env.update(DATABASE_URL=url, FOLLOWUP_SENDER="log")
        _passes(env)
    else:
        _passes(env)  # a fresh pass record: health must not find the world's too old
    _page_files(block, directory)
    monkeypatch.chdir(directory)
    plans = [in_process_argv(command) for command in block.commands()]
    assert plans, f"{block.id}: a shell block without a command"
    if all(plan is not None for plan in plans):
        _run_in_process(block, [p for p in plans if p is not None], env)
    else:
        _run_in_bash(block, env, directory)


def test_the_reference_root_files_are_scanned() -> None:
    assert {p.relative_to(ROOT).as_posix() for p in {b.path for b in BLOCKS}} >= {
        "README.md", "CONTRIBUTING.md"}

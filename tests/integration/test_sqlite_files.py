"""SQLite files: private when followup creates them, never created by a read-only command.

Before: the file got the process umask's mode (0644 under the usual 022, readable by every
local user, message content included), a directory made for it 0755; and
`DATABASE_URL=sqlite:///nonexistent/dir/x.db followup health` created that directory and a
migrated database, then reported on the empty database as if it were the real one.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from followup_cli.cli.app import app
from followup_cli.db.engine import Database
from followup_cli.errors import DatabaseError

runner = CliRunner()
POST = ["schedule", "post-event", "--user-id", "u1", "--conversation-id", "c1",
        "--event-date", "2026-11-14T18:00"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: whatever followup creates must still be private."""
    old = os.umask(0)
    yield
    os.umask(old)


def run(*args: str, **env: str) -> Any:
    return runner.invoke(app, list(args), env=env)


def test_the_embedded_default_is_private(tmp_path: Path, open_umask: None,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    data_home = tmp_path / "xdg"  # missing: followup creates it and its followup/ folder
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    result = run(*POST)
    assert result.exit_code == 0, result.output
    db_file = data_home / "followup" / "followup.db"
    assert mode(db_file) == 0o600
    assert mode(data_home / "followup") == 0o700 and mode(data_home) == 0o700
    # while a connection is open, SQLite's -wal and -shm files exist, with the same mode
    db = Database(f"sqlite:///{db_file}")
    try:
        with db.transaction(readonly=True):
            for suffix in ("-wal", "-shm"):
                side = db_file.with_name(db_file.name + suffix)
                assert side.exists() and mode(side) == 0o600, suffix
    finally:
        db.dispose()


def test_an_explicit_path_gets_private_directories_and_file(tmp_path: Path,
                                                            open_umask: None) -> None:
    path = tmp_path / "a" / "b" / "x.db"
    result = run(*POST, DATABASE_URL=f"sqlite:///{path}")
    assert result.exit_code == 0, result.output
    assert mode(path) == 0o600
    assert mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b") == 0o700


READ_ONLY = {
    "health": ["health"],
    "stats": ["stats"],
    "list": ["list"],
    "show": ["show", "0123456789abcdef"],
    "scan-inactive --dry-run": ["scan-inactive", "--dry-run"],
    "cleanup --dry-run": ["cleanup", "--dry-run"],
    "db current": ["db", "current"],
}


@pytest.mark.parametrize("args", READ_ONLY.values(), ids=READ_ONLY.keys())
def test_a_read_only_command_never_creates_a_database(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    for env in ({"DATABASE_URL": f"sqlite:///{missing}"}, {}):
        argv = args if env else ["--database-url", f"sqlite:///{missing}", *args]
        result = run(*argv, **env)
        assert result.exit_code == 4, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(missing) in lines[0], result.stderr
        assert "does not create" in lines[0]
        assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize("args", READ_ONLY.values(), ids=READ_ONLY.keys())
def test_a_read_only_command_never_migrates_an_explicit_file(tmp_path: Path,
                                                             args: list[str]) -> None:
    """An empty file and one a release ago: a read-only command reads, it does not write
    the schema (health migrated both; serve answered 503 for the same files)."""
    from alembic import command

    from followup_cli.db.migrate import alembic_config

    empty = tmp_path / "empty.db"
    empty.touch()
    old = tmp_path / "old.db"
    db = Database(f"sqlite:///{old}")
    try:
        command.upgrade(alembic_config(db), "0002_admission_guards")
    finally:
        db.dispose()
    before = old.read_bytes()
    for path in (empty, old):
        result = run(*args, DATABASE_URL=f"sqlite:///{path}")
        assert result.exit_code == 4, result.output
        assert "followup db upgrade" in result.output  # stderr; db current: stdout
    # (opening it in WAL mode writes the empty file's header page; no table is made)
    import sqlite3

    with sqlite3.connect(empty) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    assert old.read_bytes() == before


def test_a_writing_command_still_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "new" / "x.db"
    assert run("cleanup", "--yes", DATABASE_URL=f"sqlite:///{path}").exit_code == 0
    assert path.exists()
    assert run("health", DATABASE_URL=f"sqlite:///{path}").exit_code in (0, 1)


def test_the_embedded_default_is_created_by_any_command(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A new user can start with `followup health`: only an explicit URL is guarded."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    result = run("health", "--json")
    assert result.exit_code in (0, 1), result.output
    assert (tmp_path / "xdg" / "followup" / "followup.db").exists()


def test_database_create_false_refuses_a_missing_file(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/nope.db", create=False)
    with pytest.raises(DatabaseError, match="no database at"):
        db.ensure_schema()
    assert not (tmp_path / "nope.db").exists()

"""Rolling upgrades: a database migrated by a newer followup.

A fake "future" migration (0099) is applied with a copy of the migrations folder, recorded
as applied by followup 9.1.0, once declaring itself compatible with this release
(`oldest_compatible_release = "0.2.0"`: an expand step) and once not ("9.0.0": a contract
step). This followup must go on with the first and stop with the second, exit 4, naming
9.1.0. `followup db upgrade` must leave both alone with one line, exit 4.

Before: every command demanded the exact revision it was built for (exit 4, "run
`followup db upgrade`"), and `followup db upgrade` then failed with `internal error:
CommandError` (exit 1) because Alembic cannot find the newer revision.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from followup_cli.cli.app import app
from followup_cli.db import compat
from followup_cli.db.engine import Database
from followup_cli.db.migrate import alembic_config
from followup_cli.errors import SchemaError
from followup_cli.service.delivery import run_due_for
from followup_cli.settings import load_settings, normalize_database_url
from followup_cli.store.idle_probe import record_if_idle

runner = CliRunner()
FUTURE = "0099_future"

MIGRATION = '''"""A release from the future adds a column.

Revision ID: {revision}
Revises: {down}
"""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None

oldest_compatible_release = "{oldest}"


def upgrade() -> None:
    with op.batch_alter_table("followup_runs") as batch:
        batch.add_column(sa.Column("future_note", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("followup_runs") as batch:
        batch.drop_column("future_note")
'''


def apply_future(url: str, tmp_path: Path, *, oldest: str, release: str = "9.1.0") -> None:
    """Migrate `url` the way followup `release` would: with one more migration."""
    from alembic import command

    folder = tmp_path / "future_alembic"
    shutil.copytree(compat.script_location(), folder)
    (folder / "versions" / f"{FUTURE}.py").write_text(MIGRATION.format(
        revision=FUTURE, down=compat.head_revision(), oldest=oldest), encoding="utf-8")
    db = Database(normalize_database_url(url))
    try:
        cfg = alembic_config(db, location=str(folder))
        cfg.attributes["release"] = release
        command.upgrade(cfg, "head")
    finally:
        db.dispose()


def run(url: str, *args: str, **env: str) -> Any:
    return runner.invoke(app, list(args), env={"DATABASE_URL": url, **env})


def one_line(result: Any, *needles: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return str(lines[0])


def test_the_record_written_by_the_future_release(db_url: str, tmp_path: Path) -> None:
    apply_future(db_url, tmp_path, oldest="0.2.0")
    engine = sa.create_engine(normalize_database_url(db_url))
    with engine.connect() as conn:
        rows: dict[str, str] = dict(conn.execute(sa.text(
            "SELECT revision, migrated_by FROM followup_schema_versions")).all())
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == (
            FUTURE)
    engine.dispose()
    assert rows[FUTURE] == "9.1.0"


def idle_pass_recorded(url: str) -> bool:
    """The idle cron pass's own verdict, on its raw driver (no SQLAlchemy)."""
    return record_if_idle(normalize_database_url(url), revision=compat.head_revision(),
                          run_id=uuid.uuid4().hex, counts={}, statement_timeout_ms=30_000,
                          connect_timeout_s=10)


def test_a_compatible_newer_schema_is_used(db_url: str, tmp_path: Path) -> None:
    apply_future(db_url, tmp_path, oldest="0.2.0")
    assert idle_pass_recorded(db_url)
    post = ["schedule", "post-event", "--user-id", "u1", "--conversation-id", "c1",
            "--event-date", "2026-11-14T18:00", "--json"]
    assert run(db_url, *post).exit_code == 0
    listed = run(db_url, "list", "--json")
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)["followups"]) == 1
    current = run(db_url, "db", "current", "--json")
    assert current.exit_code == 0, current.output
    doc = json.loads(current.stdout)
    assert (doc["state"], doc["current"], doc["migrated_by"], doc["usable"]) == (
        "newer_compatible", FUTURE, "9.1.0", True)
    assert doc["up_to_date"] is False
    upgrade = run(db_url, "db", "upgrade")
    assert upgrade.exit_code == 4, upgrade.output
    one_line(upgrade, FUTURE, "9.1.0", "nothing to upgrade", "still works with it")


def test_an_incompatible_newer_schema_stops_this_release(db_url: str, tmp_path: Path) -> None:
    apply_future(db_url, tmp_path, oldest="9.0.0")
    assert not idle_pass_recorded(db_url)
    for args in (["health"], ["list"], ["schedule", "reengagement", "--user-id", "u9"]):
        result = run(db_url, *args)
        assert result.exit_code == 4, (args, result.output)
        one_line(result, "migrated to 0099_future by followup 9.1.0",
                 "needs followup 9.0.0 or newer", "upgrade followup on this host")
    with pytest.raises(SchemaError, match=r"9\.1\.0"):
        run_due_for(load_settings({"DATABASE_URL": db_url, "FOLLOWUP_SENDER": "log"}))
    current = run(db_url, "db", "current", "--json")
    assert current.exit_code == 4
    assert json.loads(current.stdout)["state"] == "newer_incompatible"
    upgrade = run(db_url, "db", "upgrade")
    assert upgrade.exit_code == 4, upgrade.output
    one_line(upgrade, FUTURE, "9.1.0", "nothing to upgrade", "cannot work with it")


def test_an_unrecorded_unknown_revision_is_refused(db_url: str) -> None:
    engine = sa.create_engine(normalize_database_url(db_url))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'zz_someday'"))
    engine.dispose()
    result = run(db_url, "stats")
    assert result.exit_code == 4
    one_line(result, "zz_someday", "does not know", "upgrade followup on this host")
    assert run(db_url, "db", "upgrade").exit_code == 4


def test_sqlite_never_migrates_a_newer_schema(sqlite_url: str, tmp_path: Path) -> None:
    """The embedded database migrates itself forward, never back or sideways."""
    apply_future(sqlite_url, tmp_path, oldest="9.0.0")
    db = Database(sqlite_url)
    try:
        with pytest.raises(SchemaError):
            db.ensure_schema()
        assert db.current_revision() == FUTURE
    finally:
        db.dispose()


@pytest.mark.parametrize(("release", "oldest", "usable"), [
    ("0.2.0", "0.2.0", True), ("0.2.1", "0.2.0", True), ("0.10.0", "0.9.0", True),
    ("0.2.0", "0.3.0", False), ("0.2.0rc1", "0.2.0", True), ("1.0", "1.0.0", True)])
def test_release_comparison(release: str, oldest: str, usable: bool) -> None:
    lookup: Callable[[str], compat.Record | None] = lambda _rev: ("9.9.9", oldest)  # noqa: E731
    assert compat.assess("zz_future", lookup, release=release).usable is usable

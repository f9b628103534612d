"""The schema Alembic builds is the schema the code declares, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from followup_cli.db.engine import Database
from followup_cli.db.migrate import alembic_config, head_revision, upgrade
from followup_cli.db.schema import SCHEMA_REVISION, metadata
from followup_cli.errors import SchemaError
from followup_cli.settings import normalize_database_url


def _diff(db: Database) -> list[Any]:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                      "compare_server_default": False})
        return list(compare_metadata(ctx, metadata))


def test_code_knows_the_head_revision() -> None:
    assert head_revision() == SCHEMA_REVISION


def test_migrated_schema_matches_declared_models(db_url: str) -> None:
    db = Database(normalize_database_url(db_url))
    try:
        assert db.current_revision() == SCHEMA_REVISION
        assert _diff(db) == []
    finally:
        db.dispose()


def test_a_drifted_model_is_detected(db_url: str) -> None:
    """The comparison above can fail: an extra declared column shows up as a diff."""
    db = Database(normalize_database_url(db_url))
    extra = sa.Column("not_migrated", sa.Integer())
    table = metadata.tables["scheduled_followups"]
    table.append_column(extra)
    try:
        diffs = _diff(db)
    finally:
        table._columns.remove(extra)  # restore the shared metadata
        db.dispose()
    assert any("not_migrated" in repr(d) for d in diffs)


@pytest.mark.postgres
def test_postgres_without_schema_refuses_then_upgrades(pg_empty_url: str) -> None:
    db = Database(normalize_database_url(pg_empty_url))
    try:
        with pytest.raises(SchemaError, match="followup db upgrade"), db.transaction():
            pass
        upgrade(db)
        assert db.current_revision() == SCHEMA_REVISION
        with db.transaction(readonly=True) as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM scheduled_followups")).scalar() == 0
    finally:
        db.dispose()


def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    from alembic import command

    db = Database(normalize_database_url(db_url))
    try:
        command.downgrade(alembic_config(db), "base")
        assert db.current_revision() is None
        with db.engine.connect() as conn:
            assert not sa.inspect(conn).has_table("scheduled_followups")
        upgrade(db)
        assert db.current_revision() == SCHEMA_REVISION and _diff(db) == []
    finally:
        db.dispose()


def test_sqlite_file_is_created_and_migrated_on_first_use(tmp_path) -> None:
    path = tmp_path / "deep" / "dir" / "f.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.transaction(readonly=True) as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM ai_messages")).scalar() == 0
        assert path.exists() and db.current_revision() == SCHEMA_REVISION
    finally:
        db.dispose()

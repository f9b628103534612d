"""Alembic environment: one connection from followup's own Database, batch mode on SQLite.

After each migration step, the step is recorded in followup_schema_versions (once that
table exists): which release applied it and the oldest release its schema still works
with, as the migration declares in `oldest_compatible_release`. Older hosts read that row
to decide whether they may go on (followup_cli/db/compat.py).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

import followup_cli
from followup_cli.db.engine import Database
from followup_cli.db.schema import metadata
from followup_cli.settings import load_settings

config = context.config
database: Database = config.attributes.get("database") or Database(
    load_settings(check_templates=False).database_url
)
# The release that records the steps: this followup (tests stand in a future one).
release: str = config.attributes.get("release") or followup_cli.__version__

VERSIONS = "followup_schema_versions"


def record_step(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
    """Write (or, going down, remove) the followup_schema_versions row of one step."""
    conn = ctx.connection
    if not sa.inspect(conn).has_table(VERSIONS):
        return  # before the migration that creates it, or after one that drops it
    revision = step.up_revision_id
    conn.execute(sa.text(f"DELETE FROM {VERSIONS} WHERE revision = :r"), {"r": revision})
    if not step.is_upgrade:
        return
    module = getattr(step.up_revision, "module", None)
    oldest = getattr(module, "oldest_compatible_release", None)
    if not oldest:
        raise RuntimeError(f"migration {revision} declares no oldest_compatible_release")
    conn.execute(
        sa.text(f"INSERT INTO {VERSIONS} (revision, migrated_by, oldest_compatible_release)"
                " VALUES (:r, :by, :oldest)"),
        {"r": revision, "by": release, "oldest": oldest})


def run_migrations_online() -> None:
    with database.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=database.dialect == "sqlite",
            compare_type=True,
            on_version_apply=[record_step],
            # One transaction for the whole upgrade on SQLite too (Alembic would give each
            # step its own): its BEGIN IMMEDIATE (Database's begin hook) makes processes
            # meeting a fresh file take turns, and the revision is read under that lock,
            # so the second finds the steps done instead of repeating them. SQLite's DDL is
            # transactional once pysqlite's implicit commits are off, as Database does.
            transactional_ddl=True,
        )
        with context.begin_transaction():
            if database.is_postgres:
                # DDL may outlast the 30 s statement timeout (an index on a large table).
                connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
                # Two hosts upgrading at once take turns instead of racing on DDL: the
                # second waits for the first however long it takes, then finds nothing
                # left to do. The table locks the DDL itself needs keep the session's
                # lock_timeout, so an upgrade never queues every pass behind it for long.
                connection.exec_driver_sql("SET LOCAL lock_timeout = 0")
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7313, 0)")
                connection.exec_driver_sql("SET LOCAL lock_timeout = DEFAULT")
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
run_migrations_online()

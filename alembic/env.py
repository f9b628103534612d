"""Alembic environment: one connection from followup's own Database, batch mode on SQLite."""

from __future__ import annotations

from alembic import context

from followup_cli.db.engine import Database
from followup_cli.db.schema import metadata
from followup_cli.settings import load_settings

config = context.config
database: Database = config.attributes.get("database") or Database(
    load_settings(check_templates=False).database_url
)


def run_migrations_online() -> None:
    with database.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=database.dialect == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if database.is_postgres:
                # Two hosts upgrading at once take turns instead of racing on DDL.
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7313, 0)")
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
run_migrations_online()

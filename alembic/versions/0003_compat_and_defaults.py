"""Schema-version records for rolling upgrades, and defaults for guide-column INSERTs.

followup_schema_versions: one row per applied revision, written by alembic/env.py after
each migration step: the release that applied it and the oldest release its schema still
works with (each migration's `oldest_compatible_release`). A host running an older release
reads it to decide whether it may go on against a schema a newer release migrated.

scheduled_followups: a row the original application inserts with only the guide's columns
is complete. `next_attempt_at` defaults to the row's `scheduled_at` and `event_at` is
derived from `trigger_data->>'event_date'` (when that text reads as a time). PostgreSQL: a
BEFORE INSERT trigger fills NEW (the column stays NOT NULL). SQLite, which cannot assign
to NEW (and where any trigger would double the cost of followup's own inserts), lets the
column admit NULL and indexes the incomplete rows; followup completes them at the start of
its write transactions. The SQL is a frozen copy of followup_cli/db/guide_rows.py as of
this revision.

Revision ID: 0003_compat_and_defaults
Revises: 0002_admission_guards
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_compat_and_defaults"
down_revision = "0002_admission_guards"
branch_labels = None
depends_on = None

# Expand only (a new table, triggers that fill what older releases always write
# themselves): 0.1.0 keeps working.
oldest_compatible_release = "0.1.0"

PG_FUNCTION = r"""
CREATE FUNCTION followup_fill_defaults() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.next_attempt_at IS NULL THEN
        NEW.next_attempt_at := NEW.scheduled_at;
    END IF;
    IF NEW.event_at IS NULL AND NEW.trigger_type = 'post_event'
            AND jsonb_typeof(NEW.trigger_data -> 'event_date') = 'string'
            AND (NEW.trigger_data ->> 'event_date') ~ '^\d{4}-\d{2}-\d{2}' THEN
        BEGIN
            NEW.event_at := (NEW.trigger_data ->> 'event_date')::timestamptz;
            IF NOT isfinite(NEW.event_at) THEN
                NEW.event_at := NULL;
            END IF;
        EXCEPTION WHEN others THEN
            NEW.event_at := NULL;  -- not a time: the row is accepted without it
        END;
    END IF;
    RETURN NEW;
END
$$
"""

PG_TRIGGER = """
CREATE TRIGGER scheduled_followups_fill_defaults
BEFORE INSERT ON scheduled_followups
FOR EACH ROW
WHEN (NEW.next_attempt_at IS NULL OR (NEW.event_at IS NULL AND NEW.trigger_type = 'post_event'))
EXECUTE FUNCTION followup_fill_defaults()
"""

# SQLite: the rows another program wrote without next_attempt_at, and nothing else
# (followup completes them at the start of its write transactions).
SQLITE_INDEX = """
CREATE INDEX ix_scheduled_followups_incomplete ON scheduled_followups (id)
WHERE next_attempt_at IS NULL
"""


def _run(statement: str) -> None:
    # The driver's own SQL, not text(): no bind-parameter parsing of the trigger bodies.
    op.get_bind().exec_driver_sql(statement)


def upgrade() -> None:
    op.create_table(
        "followup_schema_versions",
        sa.Column("revision", sa.String(64), primary_key=True),
        sa.Column("migrated_by", sa.String(32), nullable=False),
        sa.Column("oldest_compatible_release", sa.String(32), nullable=False),
        sa.Column("migrated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.current_timestamp()),
    )
    if op.get_bind().dialect.name == "postgresql":
        _run(PG_FUNCTION)
        _run(PG_TRIGGER)
        return
    # SQLite rebuilds the table to drop NOT NULL (the batch copies rows, indexes and
    # named CHECKs).
    with op.batch_alter_table("scheduled_followups") as batch:
        batch.alter_column("next_attempt_at", existing_type=sa.DateTime(timezone=True),
                           nullable=True)
    _run(SQLITE_INDEX)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _run("DROP TRIGGER scheduled_followups_fill_defaults ON scheduled_followups")
        _run("DROP FUNCTION followup_fill_defaults()")
    else:
        _run("DROP INDEX ix_scheduled_followups_incomplete")
        _run("UPDATE scheduled_followups SET next_attempt_at = scheduled_at "
             "WHERE next_attempt_at IS NULL")
        with op.batch_alter_table("scheduled_followups") as batch:
            batch.alter_column("next_attempt_at", existing_type=sa.DateTime(timezone=True),
                               nullable=False)
    op.drop_table("followup_schema_versions")

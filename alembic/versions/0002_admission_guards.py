"""Per-user guard rows for the one admission path, and heartbeats on run records.

followup_user_guards: one row per user that was ever admitted a follow-up. Admission locks
the rows of its users (SELECT ... FOR UPDATE, sorted) instead of taking advisory locks, so
a bulk import or scan waits only for the users it touches, a single `schedule` waits only
for its own user, and a million users stay within PostgreSQL's limits (row locks live in
the tuples, not in the shared lock table).

followup_runs.heartbeat_at: a live pass touches it; a `running` record whose pass died is
closed as `abandoned` by the next pass of its kind.

Revision ID: 0002_admission_guards
Revises: 0001_initial
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_admission_guards"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

# Expand only (a new table, a nullable column): 0.1.0 keeps working.
oldest_compatible_release = "0.1.0"


def upgrade() -> None:
    op.create_table(
        "followup_user_guards",
        sa.Column("user_id", sa.String(255), primary_key=True),
    )
    with op.batch_alter_table("followup_runs") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("followup_runs") as batch:
        batch.drop_column("heartbeat_at")
    op.drop_table("followup_user_guards")

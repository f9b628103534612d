"""Template choice reads a conversation's newest scores from the index alone.

The newest EMOTION_WINDOW scores of a conversation are ordered by (created_at DESC, id
DESC). ix_ai_messages_conversation_scored held (conversation_id, created_at): each lookup
read one entry more than it needed, fetched every row from the heap and sorted them on id.
Its replacement holds (conversation_id, created_at, id, emotion_score): a backward scan
returns the rows in the wanted order and, once the table is vacuumed, without touching the
heap. Every query that read the old index reads this one by the same leading columns.

Measured on 300,000 conversations / 3,000,000 messages (PostgreSQL 15, 20,000 lookups in
one statement, as scan-inactive does): 355 ms against 185 ms; the index is 167 MB against
130 MB.

On a large ai_messages the build holds writes to that table until it ends (about a second
per million messages on the bench machine). It can be built beforehand without holding
them, and this step then only drops the old index:

    CREATE INDEX CONCURRENTLY ix_ai_messages_conversation_recent ON ai_messages
        (conversation_id, created_at, id, emotion_score) WHERE emotion_score IS NOT NULL;

An index of that name that is INVALID (a CONCURRENTLY build that failed or was cancelled)
or not this definition is dropped and built again by this step.

Revision ID: 0005_recent_scores_index
Revises: 0004_index_diet
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_recent_scores_index"
down_revision = "0004_index_diet"
branch_labels = None
depends_on = None

# An index only: every query of every release still runs, by this index.
oldest_compatible_release = "0.1.0"

SCORED = "emotion_score IS NOT NULL"
NAME = "ix_ai_messages_conversation_recent"
COLUMNS = ("conversation_id", "created_at", "id", "emotion_score")
# How PostgreSQL prints the index this step builds (pg_get_indexdef), after "ON <table> ".
DEFINITION = f"USING btree ({', '.join(COLUMNS)}) WHERE ({SCORED})"


def _drop_unusable_prebuilt() -> None:
    """An index of this name built beforehand is kept only if it is valid and the one this
    step would build: a CONCURRENTLY build that failed or was cancelled leaves an INVALID
    index the planner never uses, which IF NOT EXISTS alone would keep."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    found = bind.execute(sa.text(
        "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " WHERE i.indexrelid = to_regclass(:name)"), {"name": NAME}).first()
    if found is not None and not (found[0] and str(found[1]).endswith(DEFINITION)):
        op.drop_index(NAME, table_name="ai_messages")


def upgrade() -> None:
    _drop_unusable_prebuilt()
    op.create_index(NAME, "ai_messages", list(COLUMNS), postgresql_where=sa.text(SCORED),
                    sqlite_where=sa.text(SCORED), if_not_exists=True)
    op.drop_index("ix_ai_messages_conversation_scored", table_name="ai_messages")


def downgrade() -> None:
    op.create_index("ix_ai_messages_conversation_scored", "ai_messages",
                    ["conversation_id", "created_at"],
                    postgresql_where=sa.text(SCORED), sqlite_where=sa.text(SCORED))
    op.drop_index(NAME, table_name="ai_messages")

"""Initial schema: scheduled_followups (the guide's table plus claim/lease columns),
ai_conversations, ai_messages, followup_runs.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

# The first schema: every release works with it.
oldest_compatible_release = "0.1.0"

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _partial(where: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(where), "sqlite_where": sa.text(where)}


def upgrade() -> None:
    op.create_table(
        "scheduled_followups",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("trigger_type", sa.String(50), nullable=False),
        sa.Column("trigger_data", JSON, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("scheduled_at", TS, nullable=False),
        sa.Column("executed_at", TS),
        sa.Column("cancelled_at", TS),
        sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("template_id", sa.String(50)),
        sa.Column("message_content", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("error_message", sa.Text()),
        sa.Column("retry_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("locked_until", TS),
        sa.Column("locked_by", sa.String(64)),
        sa.Column("last_attempt_at", TS),
        sa.Column("event_at", TS),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'executed', 'failed', 'cancelled')",
            name="ck_scheduled_followups_status"),
        sa.CheckConstraint("trigger_type IN ('post_event', 'reengagement')",
                           name="ck_scheduled_followups_trigger_type"),
    )
    op.create_index("ix_scheduled_followups_user_id", "scheduled_followups", ["user_id"])
    op.create_index("ix_scheduled_followups_conversation_id", "scheduled_followups",
                    ["conversation_id"])
    op.create_index("ix_scheduled_followups_scheduled_at", "scheduled_followups",
                    ["scheduled_at"])
    op.create_index("idx_scheduled_followups_status_scheduled", "scheduled_followups",
                    ["status", "scheduled_at"])
    op.create_index("idx_scheduled_followups_user_status", "scheduled_followups",
                    ["user_id", "status"])
    op.create_index("ix_scheduled_followups_due", "scheduled_followups", ["next_attempt_at"],
                    **_partial("status = 'pending'"))
    op.create_index("ix_scheduled_followups_leased", "scheduled_followups", ["locked_until"],
                    **_partial("status = 'processing'"))
    op.create_index(
        "uq_scheduled_followups_live_reengagement", "scheduled_followups", ["user_id"],
        unique=True,
        **_partial("trigger_type = 'reengagement' AND status IN ('pending', 'processing')"))
    op.create_index("ix_scheduled_followups_executed_at", "scheduled_followups",
                    ["executed_at"])
    op.create_index("ix_scheduled_followups_created_at", "scheduled_followups", ["created_at"])

    op.create_table(
        "ai_conversations",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.current_timestamp()),
        sa.Column("updated_at", TS),
        sa.Column("title", sa.Text()),
    )
    op.create_index("ix_ai_conversations_user_id", "ai_conversations",
                    ["user_id", "created_at"])

    op.create_table(
        "ai_messages",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("conversation_id", sa.String(255),
                  sa.ForeignKey("ai_conversations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False, server_default=""),
        sa.Column("emotion_score", sa.Float(precision=53)),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.current_timestamp()),
        sa.CheckConstraint("role IN ('user', 'assistant', 'system')",
                           name="ck_ai_messages_role"),
        sa.CheckConstraint(
            "emotion_score IS NULL OR (emotion_score >= 0 AND emotion_score <= 1)",
            name="ck_ai_messages_emotion_score"),
    )
    op.create_index("ix_ai_messages_conversation_scored", "ai_messages",
                    ["conversation_id", "created_at"], **_partial("emotion_score IS NOT NULL"))
    op.create_index("ix_ai_messages_user_activity", "ai_messages", ["user_id", "created_at"],
                    **_partial("role = 'user'"))

    op.create_table(
        "followup_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("status", sa.String(20), nullable=False, server_default="running"),
        sa.Column("counts", JSON, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("error_message", sa.Text()),
    )
    op.create_index("ix_followup_runs_kind_finished", "followup_runs", ["kind", "finished_at"])


def downgrade() -> None:
    op.drop_table("followup_runs")
    op.drop_table("ai_messages")
    op.drop_table("ai_conversations")
    op.drop_table("scheduled_followups")

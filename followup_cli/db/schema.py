"""The declared schema. Alembic migrations build the same thing; a test diffs the two.

Timestamps are timezone-aware and stored in UTC: `timestamptz` on PostgreSQL, UTC text on
SQLite (via UTCDateTime), so the guide's SQL (`executed_at - scheduled_at`, `NOW() -
INTERVAL '1 hour'`) means what it says whatever the server's TimeZone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn

from followup_cli.db import guide_rows, rules, states
from followup_cli.db.partial import partial_index

# Statuses of scheduled_followups (`processing` is the in-flight state of a claimed row) and
# trigger types; defined with the rules (db/states.py), re-exported here where the tables are.
PENDING, PROCESSING, EXECUTED, FAILED, CANCELLED = states.STATUSES
STATUSES = states.STATUSES
POST_EVENT, REENGAGEMENT = states.TRIGGER_TYPES
TRIGGER_TYPES = states.TRIGGER_TYPES


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database layer")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text written by another program
            value = datetime.fromisoformat(value)
        stamp: datetime = value
        if stamp.tzinfo is None:
            return stamp.replace(tzinfo=UTC)
        return stamp.astimezone(UTC)


class JSONDocument(sa.types.TypeDecorator[Any]):
    """JSONB on PostgreSQL (so `trigger_data->>'event_date'` works as the guide writes it),
    JSON text on SQLite. The PostgreSQL dialect is imported only when it is in use: it
    costs an idle SQLite pass 30 ms of start-up."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


JSONType = JSONDocument()

# A column flagged so is NOT NULL on PostgreSQL but admits NULL in SQLite's table definition,
# where followup completes rows another program wrote without it (SQLite cannot assign to
# NEW in a trigger; see followup_cli/db/guide_rows.py).
SQLITE_COMPLETED_BY_FOLLOWUP = "sqlite_completed_by_followup"


@compiles(CreateColumn, "sqlite")
def _sqlite_column(element: CreateColumn, compiler: Any, **kw: Any) -> str:
    spec: str = compiler.visit_create_column(element, **kw)
    if element.element.info.get(SQLITE_COMPLETED_BY_FOLLOWUP):
        spec = spec.replace(" NOT NULL", "")
    return spec


metadata = sa.MetaData()

scheduled_followups = sa.Table(
    "scheduled_followups",
    metadata,
    # --- the guide's columns, same names and meaning ---
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("conversation_id", sa.String(255), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("trigger_type", sa.String(50), nullable=False),
    sa.Column("trigger_data", JSONType, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("scheduled_at", UTCDateTime(), nullable=False),
    sa.Column("executed_at", UTCDateTime()),
    sa.Column("cancelled_at", UTCDateTime()),
    sa.Column("status", sa.String(20), nullable=False, server_default=PENDING),
    sa.Column("template_id", sa.String(50)),
    sa.Column("message_content", sa.Text()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("error_message", sa.Text()),
    sa.Column("retry_count", sa.Integer(), nullable=False, server_default="0"),
    # --- added by followup ---
    # When the next delivery attempt may start: scheduled_at at first, later the backoff.
    # scheduled_at itself never moves, so the guide's delay metric stays honest. A row
    # inserted without it gets its scheduled_at (followup_cli/db/guide_rows.py).
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False,
              info={SQLITE_COMPLETED_BY_FOLLOWUP: True}),
    # The claim lease: a `processing` row whose locked_until has passed was held by a pass
    # that died, and may be claimed again.
    sa.Column("locked_until", UTCDateTime()),
    sa.Column("locked_by", sa.String(64)),
    sa.Column("last_attempt_at", UTCDateTime()),
    # The event instant of a post-event follow-up, for the ±1 day duplicate rule (the text
    # copy in trigger_data->>'event_date' is for people and the guide's SQL; a row inserted
    # without it gets it from that text when the text reads as a time).
    sa.Column("event_at", UTCDateTime()),
    sa.CheckConstraint(f"status IN {STATUSES!r}", name="ck_scheduled_followups_status"),
    sa.CheckConstraint(f"trigger_type IN {TRIGGER_TYPES!r}",
                       name="ck_scheduled_followups_trigger_type"),
    # The guide's indexes.
    # (ix_scheduled_followups_user_id is gone: idx_scheduled_followups_user_status, with
    # user_id first, serves every query that used it; migration 0004.)
    sa.Index("ix_scheduled_followups_conversation_id", "conversation_id"),
    sa.Index("ix_scheduled_followups_scheduled_at", "scheduled_at"),
    sa.Index("idx_scheduled_followups_status_scheduled", "status", "scheduled_at"),
    sa.Index("idx_scheduled_followups_user_status", "user_id", "status"),
    sa.Index("ix_scheduled_followups_created_at", "created_at"),
)
guide_rows.attach(scheduled_followups)


def _partial(name: str, column: str, predicate: sa.ColumnElement[bool], *,
             unique: bool = False) -> sa.Index:
    """A partial index whose predicate is one of the rules (db/rules.py), on both dialects."""
    return partial_index(name, scheduled_followups.c[column], where=predicate, unique=unique)


# The due claim reads only pending rows, lease recovery only held ones: partial, so their
# cost does not grow with history (executed, failed and cancelled rows are not in them).
_partial("ix_scheduled_followups_due", "next_attempt_at",
         rules.is_due_status(scheduled_followups))
_partial("ix_scheduled_followups_leased", "locked_until", rules.is_held(scheduled_followups))
# At most one live re-engagement per user, enforced by the database itself.
_partial("uq_scheduled_followups_live_reengagement", "user_id",
         rules.is_live_reengagement(scheduled_followups), unique=True)
# History only: a claim (executed_at still NULL) adds no entry; every query on executed_at
# compares it, which implies the predicate (migration 0004).
_partial("ix_scheduled_followups_executed_at", "executed_at",
         scheduled_followups.c.executed_at.is_not(None))

ai_conversations = sa.Table(
    "ai_conversations",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False,
              server_default=sa.func.current_timestamp()),
    sa.Column("updated_at", UTCDateTime()),
    sa.Column("title", sa.Text()),
    sa.Index("ix_ai_conversations_user_id", "user_id", "created_at"),
)

ai_messages = sa.Table(
    "ai_messages",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("conversation_id", sa.String(255),
              sa.ForeignKey("ai_conversations.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("content", sa.Text(), nullable=False, server_default=""),
    sa.Column("emotion_score", sa.Float(precision=53)),
    sa.Column("created_at", UTCDateTime(), nullable=False,
              server_default=sa.func.current_timestamp()),
    sa.CheckConstraint("role IN ('user', 'assistant', 'system')", name="ck_ai_messages_role"),
    sa.CheckConstraint("emotion_score IS NULL OR (emotion_score >= 0 AND emotion_score <= 1)",
                       name="ck_ai_messages_emotion_score"),
)
# Template choice: the newest scored messages of one conversation, in (created_at DESC,
# id DESC) order by a backward scan, their scores read from the index (migration 0005).
partial_index("ix_ai_messages_conversation_recent", ai_messages.c.conversation_id,
              ai_messages.c.created_at, ai_messages.c.id, ai_messages.c.emotion_score,
              where=ai_messages.c.emotion_score.is_not(None))
# Last activity: the newest message a user sent.
partial_index("ix_ai_messages_user_activity", ai_messages.c.user_id, ai_messages.c.created_at,
              where=rules.is_activity(ai_messages))

# One row per pass (run-due, scan-inactive, ...): health reads when the last one finished.
followup_runs = sa.Table(
    "followup_runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("status", sa.String(20), nullable=False, server_default="running"),
    sa.Column("counts", JSONType, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("error_message", sa.Text()),
    # Touched by a live pass; a `running` record whose heartbeat went stale (or whose pid
    # is gone, on the same host) belongs to a dead pass and is closed as `abandoned`.
    sa.Column("heartbeat_at", UTCDateTime()),
    sa.Index("ix_followup_runs_kind_finished", "kind", "finished_at"),
)

# The admission guard: one row per user. Admission locks its users' rows (sorted, FOR
# UPDATE) so the rules that span rows (duplicate window, cap, one re-engagement per period)
# hold under any number of concurrent writers, bulk or single.
followup_user_guards = sa.Table(
    "followup_user_guards",
    metadata,
    sa.Column("user_id", sa.String(255), primary_key=True),
)

# What each applied migration declared and which release applied it: a host running an
# older release reads the row of the database's revision to know whether it may go on
# (followup_cli/db/compat.py). Written by alembic/env.py, never by commands.
followup_schema_versions = sa.Table(
    "followup_schema_versions",
    metadata,
    sa.Column("revision", sa.String(64), primary_key=True),
    sa.Column("migrated_by", sa.String(32), nullable=False),
    sa.Column("oldest_compatible_release", sa.String(32), nullable=False),
    sa.Column("migrated_at", UTCDateTime(), nullable=False,
              server_default=sa.func.current_timestamp()),
)

"""The scheduling rules that span rows, each defined once, as SQL over a table.

Every creator of follow-ups (admission), the re-engagement scan's candidate query and the
schema's partial indexes are built from these functions, so changing a rule is one edit
here. The functions take the table (or an alias of it) as an argument: they import nothing
from the schema, which is itself built from them.

The rules (DESIGN "Rules"):
- live: a follow-up not yet delivered (pending, or in flight) counts for the cap and the
  duplicate rules;
- duplicate: a post-event follow-up is not scheduled when the same user has a live one whose
  event is within DUPLICATE_WINDOW of it;
- period: at most one re-engagement per inactivity period: one that is live, or one not
  cancelled that was created after the user's last activity, closes the period;
- cap: a user with `cap` live follow-ups gets no more;
- activity: a user's last activity is their newest message with role 'user', and their most
  recent conversation is that message's conversation.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from followup_cli.db.states import (
    ACTIVITY_ROLE,
    CANCELLED,
    DUPLICATE_WINDOW,
    LIVE,
    PENDING,
    POST_EVENT,
    PROCESSING,
    REENGAGEMENT,
)

Table = Any  # an sa.Table or an alias of one: anything with `.c`


def _literal(value: str) -> sa.ColumnElement[Any]:
    # Literals, not bound parameters: only then can SQLite's planner match a query to a
    # partial index's WHERE clause, and index DDL needs them anyway.
    return sa.literal_column(f"'{value}'")


def starts_with(column: Any, prefix: str) -> sa.ColumnElement[bool]:
    """`column` begins with `prefix`, letter case included on both databases (SQLite's
    LIKE ignores the case of ASCII letters: 'demo-%' matched 'Demo-Acme')."""
    found: sa.ColumnElement[bool] = sa.func.substr(column, 1, len(prefix)) == prefix
    return found


def is_live(t: Table) -> sa.ColumnElement[bool]:
    live: sa.ColumnElement[bool] = t.c.status.in_([_literal(s) for s in LIVE])
    return live


def is_live_reengagement(t: Table) -> sa.ColumnElement[bool]:
    """The predicate of the unique index that keeps one live re-engagement per user."""
    return sa.and_(t.c.trigger_type == _literal(REENGAGEMENT), is_live(t))


def is_due_status(t: Table) -> sa.ColumnElement[bool]:
    """What the delivery claim reads (the partial due index)."""
    pending: sa.ColumnElement[bool] = t.c.status == _literal(PENDING)
    return pending


def is_held(t: Table) -> sa.ColumnElement[bool]:
    """A claimed follow-up (the partial lease index)."""
    held: sa.ColumnElement[bool] = t.c.status == _literal(PROCESSING)
    return held


class _Shifted(sa.sql.expression.ColumnElement[Any]):
    """A timestamp moved by a whole number of seconds, exactly, on both dialects."""

    inherit_cache = True

    def __init__(self, value: Any, delta: timedelta) -> None:
        self.value = value
        self.seconds = int(delta.total_seconds())
        if self.seconds != delta.total_seconds():
            raise ValueError("only whole seconds")
        self.type = getattr(value, "type", sa.DateTime(timezone=True))


@compiles(_Shifted, "postgresql")
def _shifted_pg(element: _Shifted, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.value, **kw)} + INTERVAL '{element.seconds} seconds')"


@compiles(_Shifted, "sqlite")
def _shifted_sqlite(element: _Shifted, compiler: Any, **kw: Any) -> str:
    # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff' text. strftime is given the whole seconds
    # only (it would round .9995 and above up to the next second) and the microseconds,
    # which a whole-second shift leaves as they were, are appended back.
    value = compiler.process(element.value, **kw)
    return (f"(strftime('%Y-%m-%d %H:%M:%S', substr({value}, 1, 19),"
            f" '{element.seconds:+d} seconds') || substr({value}, 20))")


def duplicates_post_event(t: Table, user_id: Any, event_at: Any) -> sa.ColumnElement[bool]:
    """Rows of `t` that make a post-event follow-up for (user_id, event_at) a duplicate."""
    return sa.and_(
        t.c.user_id == user_id,
        t.c.trigger_type == _literal(POST_EVENT),
        is_live(t),
        t.c.event_at >= _Shifted(event_at, -DUPLICATE_WINDOW),
        t.c.event_at <= _Shifted(event_at, DUPLICATE_WINDOW),
    )


def closes_period(t: Table, user_id: Any, last_activity: Any) -> sa.ColumnElement[bool]:
    """Rows of `t` that close the user's current inactivity period (so no re-engagement
    for it). With no activity at all, any re-engagement not cancelled closes it."""
    return sa.and_(
        t.c.user_id == user_id,
        t.c.trigger_type == _literal(REENGAGEMENT),
        sa.or_(
            is_live(t),
            sa.and_(t.c.status != _literal(CANCELLED),
                    sa.or_(last_activity.is_(None), t.c.created_at > last_activity)),
        ),
    )


def at_cap(live_count: Any, cap: Any) -> sa.ColumnElement[bool]:
    """The per-user cap (FOLLOWUP_MAX_PENDING_PER_USER) is reached."""
    reached: sa.ColumnElement[bool] = live_count >= cap
    return reached


def is_activity(messages: Table) -> sa.ColumnElement[bool]:
    """Messages that count as the user's activity."""
    own: sa.ColumnElement[bool] = messages.c.role == _literal(ACTIVITY_ROLE)
    return own


def last_activity(messages: Table, user_id: Any) -> sa.ScalarSelect[Any]:
    """When the user last sent a message, as a correlated scalar subquery."""
    return (sa.select(sa.func.max(messages.c.created_at))
            .where(messages.c.user_id == user_id, is_activity(messages))
            .scalar_subquery())


def conversation_at(messages: Table, user_id: Any, last_at: Any) -> sa.ScalarSelect[Any]:
    """The user's most recent conversation given their last activity `last_at`, as a
    correlated scalar subquery: the conversation of the newest message the user sent (newest
    id on a tie). Their own message, not any message: a follow-up or other assistant message
    recorded in a conversation of its own does not make that conversation theirs, and the
    activity index answers it in one descent per user."""
    return (sa.select(messages.c.conversation_id)
            .where(messages.c.user_id == user_id, is_activity(messages),
                   messages.c.created_at == last_at)
            .order_by(messages.c.id.desc()).limit(1)
            .scalar_subquery())


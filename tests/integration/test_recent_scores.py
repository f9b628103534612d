"""The emotion window read for many conversations at once (scan-inactive, import, demo)
agrees with the one-conversation read that `templates explain` shows, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from followup_cli.db.schema import ai_conversations, ai_messages
from followup_cli.service.context import Context
from followup_cli.store.conversations import (
    EMOTION_WINDOW,
    recent_scored_messages,
    recent_scores_many,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)

# a conversation: messages as (minute offset, score or None); equal minutes are ties that
# the message id breaks
conversation = st.lists(st.tuples(st.integers(0, 5), st.one_of(
    st.none(), st.floats(0, 1, allow_nan=False))), max_size=9)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # emptied per example
@given(st.lists(conversation, min_size=1, max_size=4))
def test_many_reads_the_newest_scores_like_one(
        ctx: Context, convs: list[list[tuple[int, float | None]]]) -> None:
    with ctx.db.transaction() as conn:
        conn.execute(sa.delete(ai_messages))
        conn.execute(sa.delete(ai_conversations))
        for c, messages in enumerate(convs):
            conn.execute(sa.insert(ai_conversations).values(id=f"c{c}", user_id="u",
                                                            created_at=T0))
            for m, (minute, score) in enumerate(messages):
                conn.execute(sa.insert(ai_messages).values(
                    id=f"m{m:02d}-c{c}", conversation_id=f"c{c}", user_id="u", role="user",
                    content="", emotion_score=score, created_at=T0 + timedelta(minutes=minute)))
    ids = [f"c{c}" for c in range(len(convs))] + ["missing"]
    with ctx.db.transaction(readonly=True) as conn:
        many = recent_scores_many(conn, ids)
        for cid in ids:
            one = [m.emotion_score for m in recent_scored_messages(conn, cid)]
            assert len(one) <= EMOTION_WINDOW
            assert many.get(cid, []) == one

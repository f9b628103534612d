"""forget-user: nothing of the user left in any table, nothing of anyone else touched."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from followup_cli.db.schema import ai_conversations, ai_messages
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.errors import InputError, RuleViolation
from followup_cli.service.context import Context
from followup_cli.service.maintenance import forget_user
from tests.helpers import add_conversation, add_followup


def snapshot(ctx: Context) -> dict[str, list[tuple[str, str]]]:
    """(id, user_id) of every row of the three tables."""
    out = {}
    with ctx.db.transaction(readonly=True) as conn:
        for table in (sf, ai_messages, ai_conversations):
            out[table.name] = sorted(
                (r[0], r[1]) for r in conn.execute(sa.select(table.c.id, table.c.user_id)))
    return out


def seed(ctx: Context) -> None:
    add_conversation(ctx, "c-alice-1", "alice", [0.9, 0.8])
    add_conversation(ctx, "c-alice-1", "alice", [None], role="assistant")
    add_conversation(ctx, "c-alice-2", "alice", [0.2])
    add_conversation(ctx, "c-bob", "bob", [0.5, 0.5])
    add_followup(ctx, user_id="alice", conversation_id="c-alice-1")
    add_followup(ctx, user_id="alice", conversation_id="c-alice-2", status="executed")
    add_followup(ctx, user_id="alice", status="failed")
    add_followup(ctx, user_id="bob", conversation_id="c-bob")
    add_followup(ctx, user_id="alice-2", conversation_id="c-x")  # a prefix is not a match


def test_forgets_everything_of_the_user_and_nothing_else(ctx: Context) -> None:
    seed(ctx)
    before = snapshot(ctx)
    result = forget_user(ctx, "alice")
    assert result.counts == {"followups": 3, "messages": 4, "conversations": 2}
    assert result.total == 9
    after = snapshot(ctx)
    for name, rows in after.items():
        assert all(user != "alice" for _, user in rows), name
        # everyone else's rows are exactly as they were
        assert rows == [r for r in before[name] if r[1] != "alice"], name
    assert {u for _, u in after["scheduled_followups"]} == {"bob", "alice-2"}


def test_messages_of_others_in_the_users_conversation_go_too(ctx: Context) -> None:
    add_conversation(ctx, "c-alice", "alice", [0.5])
    add_conversation(ctx, "c-alice", "support-agent", [None], role="assistant")
    result = forget_user(ctx, "alice")
    assert result.counts["messages"] == 2
    assert snapshot(ctx)["ai_messages"] == []


def test_unknown_user_is_a_no_op(ctx: Context) -> None:
    seed(ctx)
    before = snapshot(ctx)
    result = forget_user(ctx, "nobody", confirm=lambda _c: pytest.fail("nothing to ask"))
    assert result.total == 0 and not result.aborted
    assert snapshot(ctx) == before


def test_declined_confirmation_deletes_nothing(ctx: Context) -> None:
    seed(ctx)
    before = snapshot(ctx)
    seen: list[dict[str, int]] = []

    def decline(found: dict[str, int]) -> bool:
        seen.append(found)
        return False

    result = forget_user(ctx, "alice", confirm=decline)
    assert seen == [{"followups": 3, "messages": 4, "conversations": 2}]
    assert result.aborted
    assert snapshot(ctx) == before


def test_refused_while_a_follow_up_is_in_flight(ctx: Context) -> None:
    seed(ctx)
    add_followup(ctx, user_id="alice", status="processing", locked_by="live-pass",
                 locked_until=ctx.now() + timedelta(minutes=5))
    before = snapshot(ctx)
    with pytest.raises(RuleViolation, match="being delivered") as refused:
        forget_user(ctx, "alice")
    assert "alice" not in str(refused.value)  # error output ends up in logs
    assert snapshot(ctx) == before  # one transaction: all or nothing


def test_a_dead_pass_claim_does_not_block_forgetting(ctx: Context) -> None:
    """Issue 8 problem 6: a claim left by a pass that died (its lease expired) used to make
    forget-user exit 3 for ever when no pass ran (SCHEDULER_ENABLED=false). Nothing will
    deliver it: it is forgotten with the rest."""
    seed(ctx)
    add_followup(ctx, user_id="alice", status="processing", locked_by="dead-pass",
                 locked_until=ctx.now() - timedelta(seconds=1))
    add_followup(ctx, user_id="alice", status="processing")  # no lease at all: nothing holds it
    result = forget_user(ctx, "alice")
    assert result.counts["followups"] == 5
    assert not any(user == "alice" for ids in snapshot(ctx).values() for _, user in ids)


def test_the_guard_row_is_forgotten_too(ctx: Context) -> None:
    from followup_cli.db.schema import followup_user_guards as guards
    from followup_cli.service.requests import post_event_request
    from followup_cli.service.scheduling import schedule_post_event

    schedule_post_event(ctx, post_event_request(
        ctx.settings.timezone, user_id="alice", conversation_id="c", event_date="2026-11-14"))
    forget_user(ctx, "alice")
    with ctx.db.transaction(readonly=True) as conn:
        assert conn.execute(sa.select(guards.c.user_id)).scalars().all() == []


def test_the_guard_row_goes_when_nothing_else_of_the_user_is_left(ctx: Context) -> None:
    """The user's follow-ups went with retention; their guard row, which names them, must
    go all the same (forget-user reported nothing to delete and left it)."""
    from followup_cli.db.schema import followup_user_guards as guards
    from followup_cli.service.requests import post_event_request
    from followup_cli.service.scheduling import schedule_post_event

    done = schedule_post_event(ctx, post_event_request(
        ctx.settings.timezone, user_id="alice", conversation_id="c", event_date="2026-11-14"))
    with ctx.db.transaction() as conn:  # what retention does to an old follow-up
        conn.execute(sa.delete(sf).where(sf.c.id == done.id))
    result = forget_user(ctx, "alice", confirm=lambda _c: pytest.fail("nothing to ask"))
    assert result.total == 0
    with ctx.db.transaction(readonly=True) as conn:
        assert conn.execute(sa.select(guards.c.user_id)).scalars().all() == []


def test_empty_user_id_is_invalid(ctx: Context) -> None:
    with pytest.raises(InputError):
        forget_user(ctx, "  ")

"""An admission runs as many waves as its busiest user has rows, and no more: the wave
that would find nothing left to decide is not run (on both databases).

The rules' results are the property test's business (test_admission_properties.py); these
tests pin what each admission costs in statements, where the import and the single booking
spent a whole extra join of the stage against the table to learn that nothing was left.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.service.admission import ADMITTED, AT_CAP, DUPLICATE, Admission, Summary
from followup_cli.service.context import Context
from followup_cli.service.requests import post_event_request
from followup_cli.service.scheduling import render_post_event, schedule_post_event
from followup_cli.store import executor


def staged(ctx: Context, users: list[str], *, day: int = 2) -> list[dict[str, Any]]:
    """Post-event rows, in this order, each on its own event day (no two duplicate)."""
    rows = []
    for seq, user in enumerate(users):
        event = (ctx.now() + timedelta(days=day + 3 * seq)).isoformat()
        req = post_event_request(ctx.settings.timezone, user_id=user, conversation_id="c",
                                 event_date=event)
        rows.append({**render_post_event(ctx, ctx.templates, req, [], ctx.now()).row,
                     "seq": seq})
    return rows


@pytest.fixture
def statements(ctx: Context) -> Iterator[list[str]]:
    """Every statement the context's engine sends, as sent, and every one the store's
    executor runs on a DB-API connection (the admission's, on either path)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = ctx.db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    executor.listeners.append(record_text := lambda text: record(None, None, text))
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
        executor.listeners.remove(record_text)


def admit(ctx: Context, rows: list[dict[str, Any]], **options: Any) -> Any:
    with ctx.db.transaction() as conn:
        admission = Admission(conn, cap=ctx.settings.max_pending_per_user)
        admission.add(rows)
        return admission.admit(**options)


def test_one_row_per_user_is_decided_in_one_wave(ctx: Context) -> None:
    summary = admit(ctx, staged(ctx, [f"u{i}" for i in range(20)]))
    assert summary.admitted == 20
    assert summary.waves == 1


def test_a_user_with_three_rows_takes_three_waves(ctx: Context) -> None:
    summary = admit(ctx, staged(ctx, ["a", "b", "a", "c", "a"]))
    assert summary.admitted == 5
    assert summary.waves == 3


def test_rows_decided_before_their_wave_do_not_add_one(ctx: Context) -> None:
    # u1's second row duplicates its first (same event): decided in wave 2's duplicate
    # step, after which nothing is left, so wave 2 picks nothing and ends the loop.
    rows = staged(ctx, ["u1", "u2"])
    again = {**rows[0], "id": "again", "seq": 2}
    summary = admit(ctx, [*rows, again])
    assert (summary.admitted, summary.count(DUPLICATE), summary.waves) == (2, 1, 2)
    # Already in the table: decided in wave 1's duplicate step; the other row is picked.
    summary = admit(ctx, [{**rows[0], "id": "third", "seq": 0},
                          {**staged(ctx, ["u3"])[0], "seq": 1}])
    assert (summary.admitted, summary.count(DUPLICATE), summary.waves) == (1, 1, 1)


def test_rows_refused_by_the_cap_still_end_the_loop(ctx: Context) -> None:
    cap = ctx.settings.max_pending_per_user
    admit(ctx, staged(ctx, ["full"] * cap))
    summary = admit(ctx, staged(ctx, ["full", "free"], day=200))
    assert (summary.count(ADMITTED), summary.count(AT_CAP), summary.waves) == (1, 1, 1)
    with ctx.db.transaction() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sf)
                            .where(sf.c.user_id == "full")).scalar_one() == cap


def test_a_single_booking_joins_the_stage_against_the_table_once(
        ctx: Context, statements: list[str]) -> None:
    req = post_event_request(ctx.settings.timezone, user_id="solo", conversation_id="c",
                             event_date=(ctx.now() + timedelta(days=2)).isoformat())
    statements.clear()
    assert schedule_post_event(ctx, req).status == "scheduled"
    # the duplicate step (an UPDATE of the stage from its conflicts) and the pick (a WITH)
    duplicate_steps = [s for s in statements
                       if s.startswith("UPDATE followup_stage SET outcome=")
                       and "existing_id" in s]
    picks = [s for s in statements if s.startswith("WITH first AS")]
    assert (len(duplicate_steps), len(picks)) == (1, 1), statements


def admit_counting_stage_updates(conn: sa.Connection, rows: list[dict[str, Any]]
                                  ) -> tuple[Admission, Summary, int, int]:
    """Admit `rows` (cap 5) in the caller's transaction: the admission, its summary, and
    how many stage updates it made, and how many of them heap-only (PostgreSQL)."""
    admission = Admission(conn, cap=5)
    admission.add(rows)
    summary = admission.admit()
    updated, hot = conn.exec_driver_sql(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
        "WHERE relname = 'followup_stage'").one()
    return admission, summary, int(updated), int(hot)


@pytest.mark.postgres
def test_deciding_a_row_rewrites_it_in_place(pg_engine: sa.Engine) -> None:
    """Every update a wave makes to the stage is heap-only (no new index entry): the stage
    leaves room on its pages and indexes no column a wave changes."""
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    rows = [{"seq": i, "id": f"f-{i}", "user_id": f"u{i % 400}", "conversation_id": "c",
             "trigger_type": "post_event", "template_id": "post_event_neutral_emotion",
             "message_content": "hello " * 40, "status": "pending",
             "scheduled_at": now + timedelta(days=1 + i), "event_at": now + timedelta(i),
             "next_attempt_at": now + timedelta(days=1 + i), "created_at": now,
             "retry_count": 0, "trigger_data": {"booking_id": f"B-{i}"}}
            for i in range(800)]
    with pg_engine.begin() as conn:
        _, summary, updated, hot = admit_counting_stage_updates(conn, rows)
    assert (summary.admitted, summary.waves) == (800, 2)
    assert updated >= 800
    assert hot == updated


@pytest.mark.postgres
def test_a_scan_row_of_a_user_who_has_not_written_since_is_updated_once(pg_engine: sa.Engine
                                                                         ) -> None:
    """The scan stages the last activity its candidate query saw: a user who has not
    written since is not rewritten to record it, so the wave's update is the row's only
    one, and heap-only. A user who wrote since is still found, and decided `active`."""
    from followup_cli.db.schema import ai_conversations, ai_messages
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    seen_at = now - timedelta(days=40)
    users = [f"quiet{i}" for i in range(600)]
    with pg_engine.begin() as conn:
        conn.execute(sa.insert(ai_conversations), [
            {"id": f"c-{u}", "user_id": u, "created_at": seen_at} for u in users])
        conn.execute(sa.insert(ai_messages), [
            {"id": f"m-{u}", "conversation_id": f"c-{u}", "user_id": u, "role": "user",
             "content": "x", "created_at": seen_at} for u in users])
        conn.execute(sa.insert(ai_messages), [  # quiet0 wrote after the candidate query
            {"id": "m-late", "conversation_id": "c-quiet0", "user_id": "quiet0",
             "role": "user", "content": "back", "created_at": now - timedelta(hours=1)}])
    rows = [{"seq": i, "id": f"r-{i}", "user_id": u, "conversation_id": f"c-{u}",
             "trigger_type": "reengagement", "template_id": "reengagement_neutral",
             "message_content": "we miss you " * 20, "status": "pending",
             "scheduled_at": now, "next_attempt_at": now, "created_at": now,
             "retry_count": 0, "trigger_data": {"days_inactive": 40},
             "inactive_before": now - timedelta(days=30), "last_activity": seen_at}
            for i, u in enumerate(users)]
    with pg_engine.begin() as conn:
        admission, summary, updated, hot = admit_counting_stage_updates(conn, rows)
        [active] = admission.decided("active")
    assert (summary.admitted, summary.count("active")) == (599, 1)
    assert active["user_id"] == "quiet0"
    # quiet0: its new activity, then `active`; every other row: the wave's decision
    assert updated == 599 + 2
    assert hot == updated

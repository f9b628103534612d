"""scan-inactive on real SQLite and real PostgreSQL: who is inactive, once per period."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from followup_cli.db.schema import followup_runs
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.errors import InputError, SettingsError
from followup_cli.service.context import Context
from followup_cli.service.importing import import_schedule
from followup_cli.service.requests import post_event_request, reengagement_request
from followup_cli.service.scanning import ScanOptions, scan_inactive
from followup_cli.service.scheduling import cancel_ids, schedule_post_event, schedule_reengagement
from tests.conftest import FakeClock, MakeCtx
from tests.helpers import add_conversation, rows


def ago(ctx: Context, **delta: float) -> datetime:
    return ctx.now() - timedelta(**delta)


def reengagements(ctx: Context) -> list[dict[str, Any]]:
    return [r for r in rows(ctx) if r["trigger_type"] == "reengagement"]


def mark(ctx: Context, fid: str, status: str) -> None:
    with ctx.db.transaction() as conn:
        conn.execute(sa.update(sf).where(sf.c.id == fid).values(status=status,
                                                                executed_at=ctx.now()))


def test_thresholds_29_30_31_days(ctx: Context) -> None:
    add_conversation(ctx, "c29", "u29", [0.5], at=ago(ctx, days=29, hours=23))
    add_conversation(ctx, "c30", "u30", [0.5], at=ago(ctx, days=30))
    add_conversation(ctx, "c31", "u31", [0.5], at=ago(ctx, days=31, hours=2))
    result = scan_inactive(ctx)
    assert (result.candidates, result.scheduled) == (2, 2)
    got = {r["user_id"]: r for r in reengagements(ctx)}
    assert set(got) == {"u30", "u31"}
    assert got["u30"]["trigger_data"] == {"days_inactive": 30}
    assert got["u31"]["trigger_data"] == {"days_inactive": 31}
    assert got["u31"]["scheduled_at"] == ctx.now()  # due at once
    assert got["u31"]["next_attempt_at"] == ctx.now()
    assert "31 days" in got["u31"]["message_content"]


def test_inactive_days_setting(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(REENGAGEMENT_INACTIVE_DAYS="7")
    add_conversation(ctx, "c1", "u1", [0.5], at=ago(ctx, days=8))
    assert scan_inactive(ctx).scheduled == 1


def test_assistant_messages_are_not_activity(ctx: Context) -> None:
    # u1 wrote 40 days ago; the assistant answered yesterday: still inactive
    add_conversation(ctx, "c1", "u1", [0.9], at=ago(ctx, days=40))
    add_conversation(ctx, "c1", "u1", [0.1], at=ago(ctx, days=1), role="assistant")
    # u2 only ever got assistant messages: no activity to measure, not scanned
    add_conversation(ctx, "c2", "u2", [0.5], at=ago(ctx, days=60), role="assistant")
    assert scan_inactive(ctx).scheduled == 1
    [row] = reengagements(ctx)
    assert row["user_id"] == "u1"
    assert row["trigger_data"] == {"days_inactive": 40}


def test_most_recent_conversation_and_its_template(ctx: Context) -> None:
    add_conversation(ctx, "old", "u1", [0.9, 0.9, 0.9], at=ago(ctx, days=50))
    add_conversation(ctx, "new", "u1", [0.1, 0.2, 0.1], at=ago(ctx, days=35))
    add_conversation(ctx, "happy", "u2", [0.8, 0.7, 0.9], at=ago(ctx, days=45))
    add_conversation(ctx, "other", "u3", [0.2], at=ago(ctx, days=90))
    add_conversation(ctx, "other", "u3", [None], at=ago(ctx, days=31))  # unscored, newer
    scan_inactive(ctx)
    got = {r["user_id"]: r for r in reengagements(ctx)}
    assert got["u1"]["conversation_id"] == "new"
    assert got["u1"]["template_id"] == "reengagement_low_emotion"
    assert got["u1"]["trigger_data"] == {"days_inactive": 35}
    assert got["u2"]["template_id"] == "reengagement_high_emotion"
    assert got["u3"]["template_id"] == "reengagement_low_emotion"
    assert got["u3"]["trigger_data"] == {"days_inactive": 31}


def test_most_recent_conversation_is_where_the_user_last_wrote(
        ctx: Context, tmp_path: Path) -> None:
    """An assistant message in a conversation of its own (a delivered follow-up recorded by
    the application, say) is newer than anything the user wrote: the user's most recent
    conversation is still the one they last wrote in, for every creator alike."""
    for user in ("u1", "u2", "u3"):
        add_conversation(ctx, f"chat-{user}", user, [0.9, 0.8, 0.9], at=ago(ctx, days=40))
        add_conversation(ctx, f"outreach-{user}", user, [0.1], at=ago(ctx, days=2),
                         role="assistant")
    tz = ctx.settings.timezone
    scan_inactive(ctx, ScanOptions(user_ids=["u1"]))
    schedule_reengagement(ctx, reengagement_request(tz, user_id="u2"))
    path = tmp_path / "in.jsonl"
    path.write_text('{"type": "reengagement", "user_id": "u3"}\n', encoding="utf-8")
    import_schedule(ctx, str(path))
    got = {r["user_id"]: r for r in reengagements(ctx)}
    for user in ("u1", "u2", "u3"):
        assert got[user]["conversation_id"] == f"chat-{user}"
        assert got[user]["template_id"] == "reengagement_high_emotion"
        assert got[user]["trigger_data"] == {"days_inactive": 40}


def test_rerun_same_day_schedules_nothing(ctx: Context, clock: FakeClock) -> None:
    add_conversation(ctx, "c1", "u1", [0.5], at=ago(ctx, days=40))
    assert scan_inactive(ctx).scheduled == 1
    clock.advance(hours=3)
    again = scan_inactive(ctx)
    assert (again.candidates, again.scheduled) == (0, 0)
    assert len(reengagements(ctx)) == 1


def test_cooldown_across_executed_reengagement_and_return(ctx: Context, clock: FakeClock
                                                          ) -> None:
    add_conversation(ctx, "c1", "u1", [0.5], at=ago(ctx, days=40))
    scan_inactive(ctx)
    [first] = reengagements(ctx)
    mark(ctx, first["id"], "executed")  # delivered: no longer live
    clock.advance(days=10)
    assert scan_inactive(ctx).scheduled == 0  # same inactivity period
    mark(ctx, first["id"], "failed")
    assert scan_inactive(ctx).scheduled == 0  # a failed one closes the period too
    # the user comes back, then goes quiet again for 30 days: a new period
    add_conversation(ctx, "c1", "u1", [0.9], at=ctx.now())
    clock.advance(days=29)
    assert scan_inactive(ctx).scheduled == 0
    clock.advance(days=1, minutes=1)
    assert scan_inactive(ctx).scheduled == 1
    assert len(reengagements(ctx)) == 2


def test_cancelled_reengagement_does_not_close_the_period(ctx: Context) -> None:
    add_conversation(ctx, "c1", "u1", [0.5], at=ago(ctx, days=40))
    scan_inactive(ctx)
    [first] = reengagements(ctx)
    cancel_ids(ctx, [first["id"]])
    assert scan_inactive(ctx).scheduled == 1


def test_users_at_cap_are_skipped_and_counted(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(FOLLOWUP_MAX_PENDING_PER_USER="2")
    add_conversation(ctx, "c1", "u1", [0.5], at=ago(ctx, days=40))
    add_conversation(ctx, "c2", "u2", [0.5], at=ago(ctx, days=40))
    for event in ("2026-12-01T10:00", "2026-12-05T10:00"):
        schedule_post_event(ctx, post_event_request(
            ctx.settings.timezone, user_id="u1", conversation_id="c1", event_date=event))
    result = scan_inactive(ctx)
    assert (result.candidates, result.scheduled, result.skipped_cap) == (2, 1, 1)
    assert [r["user_id"] for r in reengagements(ctx)] == ["u2"]


def test_dry_run_writes_nothing_and_limit(ctx: Context) -> None:
    for i in range(5):
        add_conversation(ctx, f"c{i}", f"u{i}", [0.5], at=ago(ctx, days=40 + i))
    dry = scan_inactive(ctx, ScanOptions(dry_run=True))
    assert (dry.candidates, dry.scheduled, len(dry.sample)) == (5, 5, 5)
    assert dry.sample[0].user_id == "u4"  # longest inactive first
    assert rows(ctx) == []
    with ctx.db.transaction(readonly=True) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(followup_runs)).scalar() == 0
    limited = scan_inactive(ctx, ScanOptions(limit=2))
    assert (limited.scheduled, limited.skipped_limit) == (2, 3)
    assert {r["user_id"] for r in reengagements(ctx)} == {"u4", "u3"}
    assert scan_inactive(ctx).scheduled == 3


def test_pass_is_recorded_and_disabled_does_nothing(make_ctx: MakeCtx) -> None:
    ctx = make_ctx()
    add_conversation(ctx, "c1", "u1", [0.5], at=ago(ctx, days=40))
    off = make_ctx(SCHEDULER_ENABLED="false")
    result = scan_inactive(off)
    assert result.enabled is False and result.scheduled == 0
    assert rows(ctx) == []
    done = scan_inactive(ctx)
    with ctx.db.transaction(readonly=True) as conn:
        [run] = conn.execute(sa.select(followup_runs)).mappings().all()
    assert run["id"] == done.run_id
    assert run["kind"] == "scan-inactive" and run["status"] == "ok"
    assert run["counts"]["scheduled"] == 1
    assert run["finished_at"] is not None


def test_live_manual_reengagement_blocks(ctx: Context) -> None:
    from followup_cli.service.requests import reengagement_request
    from followup_cli.service.scheduling import schedule_reengagement

    add_conversation(ctx, "c1", "u1", [0.5], at=ago(ctx, days=40))
    schedule_reengagement(ctx, reengagement_request(
        ctx.settings.timezone, user_id="u1", at="2027-01-01T09:00"))
    assert scan_inactive(ctx).scheduled == 0
    assert len(reengagements(ctx)) == 1


def test_many_users_in_one_pass(ctx: Context) -> None:
    from followup_cli.db.schema import ai_conversations, ai_messages

    when = ago(ctx, days=45)
    with ctx.db.transaction() as conn:
        conn.execute(sa.insert(ai_conversations), [
            {"id": f"c{i}", "user_id": f"u{i}", "created_at": when} for i in range(3000)])
        conn.execute(sa.insert(ai_messages), [
            {"id": f"m{i}", "conversation_id": f"c{i}", "user_id": f"u{i}", "role": "user",
             "content": "x", "emotion_score": (i % 10) / 10, "created_at": when}
            for i in range(3000)])
    seen: list[tuple[int, int | None]] = []
    result = scan_inactive(ctx, progress=lambda done, total: seen.append((done, total)))
    assert result.scheduled == 3000
    assert seen[-1] == (3000, 3000)
    templates = {r["template_id"] for r in reengagements(ctx)}
    assert templates == {"reengagement_low_emotion", "reengagement_neutral_emotion",
                         "reengagement_high_emotion"}


def test_admission_skips_a_live_reengagement_written_by_an_unguarded_writer(
        ctx: Context) -> None:
    # The unique partial index is the last guard: a live row written by a program that
    # takes no guard (the original application) between the rule check and the insert
    # wins, and the staged row is decided a duplicate instead of failing the batch.
    from followup_cli.service.scheduling import render_reengagement
    from followup_cli.store import admission as store

    def draft(user: str, seq: int) -> dict[str, Any]:
        return {**render_reengagement(ctx.templates, user_id=user, conversation_id="c",
                                      days_inactive=31, at=ctx.now(), template_id=None,
                                      scores=[], now=ctx.now()).row, "seq": seq}

    with ctx.db.transaction() as conn:
        store.open_stage(conn)
        store.add(conn, [draft("u1", 1), draft("u2", 2)])
        store.note_activity(conn)
        store.mark_duplicates(conn, requeue=False)
        assert store.pick(conn, wave=1, cap=10) == (2, 0)
        sneaky = draft("u1", 0)
        del sneaky["seq"]
        conn.execute(sa.insert(sf), [sneaky])
        assert store.insert_admitted(conn, wave=1, admitted=2) == 1
        # ...and reported as a duplicate of the row that won
        assert [(r["user_id"], r["existing_id"]) for r in store.decided(conn, "duplicate")
                ] == [("u1", sneaky["id"])]
    assert sorted(r["user_id"] for r in reengagements(ctx)) == ["u1", "u2"]


def test_a_reengagement_template_it_cannot_fill_is_refused_at_start(
        make_ctx: MakeCtx, tmp_path: Path) -> None:
    """A re-engagement has no booking id: such a template would fail every daily scan, so
    the templates file is refused when the settings load, before any pass starts."""
    tpl = tmp_path / "t.toml"
    tpl.write_text('[templates.reengagement_neutral_emotion]\n'
                   'content = "About booking {booking_id}?"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match=r"reengagement_neutral_emotion.*\{booking_id\}"):
        make_ctx(FOLLOWUP_TEMPLATES_FILE=str(tpl))


def test_a_pass_that_fails_writes_nothing_and_is_recorded(
        make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch) -> None:
    import followup_cli.service.scanning as scanning_service

    ctx = make_ctx()
    add_conversation(ctx, "c1", "u1", [0.5], at=ago(ctx, days=40))

    def broken(*args: object, **kwargs: object) -> object:
        raise InputError("template reengagement_neutral_emotion needs booking_id")

    monkeypatch.setattr(scanning_service, "_admit_batch", broken)
    with pytest.raises(InputError, match="booking_id"):
        scan_inactive(ctx)
    assert rows(ctx) == []
    with ctx.db.transaction(readonly=True) as conn:
        [run] = conn.execute(sa.select(followup_runs)).mappings().all()
    assert (run["status"], run["error_message"]) == ("failed", "InputError")


def test_batches_cover_everyone_once_with_ties_limit_and_cap(
        make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch) -> None:
    import followup_cli.service.scanning as scanning_service
    from followup_cli.db.schema import ai_conversations, ai_messages

    monkeypatch.setattr(scanning_service, "SCAN_BATCH", 7)
    ctx = make_ctx(FOLLOWUP_MAX_PENDING_PER_USER="1")
    with ctx.db.transaction() as conn:  # 30 users, in groups of 4 with the same instant
        conn.execute(sa.insert(ai_conversations), [
            {"id": f"c{i:02d}", "user_id": f"u{i:02d}", "created_at": ago(ctx, days=90)}
            for i in range(30)])
        conn.execute(sa.insert(ai_messages), [
            {"id": f"m{i:02d}", "conversation_id": f"c{i:02d}", "user_id": f"u{i:02d}",
             "role": "user", "content": "x", "emotion_score": 0.5,
             "created_at": ago(ctx, days=40 + i // 4)} for i in range(30)])
    for user in ("u03", "u17"):  # at the cap of 1
        schedule_post_event(ctx, post_event_request(
            ctx.settings.timezone, user_id=user, conversation_id="c", event_date="2027-01-01"))
    limited = scan_inactive(ctx, ScanOptions(limit=10))
    assert (limited.candidates, limited.scheduled) == (30, 10)
    assert limited.skipped_cap + limited.skipped_limit == 20
    seen: list[tuple[int, int | None]] = []
    rest = scan_inactive(ctx, progress=lambda d, t: seen.append((d, t)))
    assert (rest.candidates, rest.scheduled, rest.skipped_cap) == (20, 18, 2)
    assert seen[-1] == (20, 20)
    users = [r["user_id"] for r in reengagements(ctx)]
    assert len(users) == len(set(users)) == 28
    assert {"u03", "u17"}.isdisjoint(users)
    assert scan_inactive(ctx).scheduled == 0


def test_batch_recheck_skips_users_taken_or_back_since_the_candidate_query(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    # Between this pass's candidate query and its batch, an overlapping pass re-engages u1
    # and run-due delivers it, and u2 writes again: neither may get a (second) one.
    from followup_cli.store import scanning as scanning_store

    add_conversation(ctx, "c1", "u1", [0.5], at=ago(ctx, days=40))
    add_conversation(ctx, "c2", "u2", [0.5], at=ago(ctx, days=40))
    add_conversation(ctx, "c3", "u3", [0.5], at=ago(ctx, days=40))
    real = scanning_store.inactive_candidates
    calls: list[int] = []

    def stale(conn: sa.Connection, cutoff: datetime, user_ids: Any = None
              ) -> Iterator[scanning_store.Candidate]:
        found = real(conn, cutoff, user_ids)
        if not calls:
            calls.append(1)
            other = scan_inactive(ctx, ScanOptions(user_ids=["u1"]))
            assert other.scheduled == 1
            mark(ctx, reengagements(ctx)[0]["id"], "executed")
            add_conversation(ctx, "c2", "u2", [0.9], at=ctx.now())
        return found

    monkeypatch.setattr(scanning_store, "inactive_candidates", stale)
    result = scan_inactive(ctx)
    assert (result.candidates, result.scheduled, result.skipped_conflict) == (3, 1, 2)
    assert sorted(r["user_id"] for r in reengagements(ctx)) == ["u1", "u3"]

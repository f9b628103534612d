"""`cleanup --conversations-older-than-days N`: the conversation memory's retention."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from followup_cli.db.schema import ai_conversations, ai_messages
from followup_cli.errors import InputError
from followup_cli.service.context import Context
from followup_cli.service.maintenance import cleanup
from tests.helpers import add_followup, wait_for_followup_to_wait_on_a_lock


def conversation(ctx: Context, cid: str, *, created: datetime,
                 messages: tuple[datetime, ...] = ()) -> None:
    with ctx.db.transaction() as conn:
        conn.execute(sa.insert(ai_conversations).values(id=cid, user_id=f"u-{cid}",
                                                        created_at=created))
        for i, at in enumerate(messages):
            conn.execute(sa.insert(ai_messages).values(
                id=f"{cid}-m{i}", conversation_id=cid, user_id=f"u-{cid}", role="user",
                content="something personal", emotion_score=0.5, created_at=at))


def remaining(ctx: Context) -> tuple[set[str], int]:
    with ctx.db.transaction(readonly=True) as conn:
        ids = {r[0] for r in conn.execute(sa.select(ai_conversations.c.id))}
        n = conn.execute(sa.select(sa.func.count()).select_from(ai_messages)).scalar_one()
    return ids, int(n)


@pytest.fixture
def seeded(ctx: Context) -> Context:
    now = ctx.now()

    def days(n: int) -> datetime:
        return now - timedelta(days=n)

    conversation(ctx, "old", created=days(120), messages=(days(100), days(95)))
    conversation(ctx, "recent", created=days(120), messages=(days(100), days(10)))
    conversation(ctx, "empty_old", created=days(100))
    conversation(ctx, "empty_new", created=days(10))
    # Written after its (imported) messages: the last message decides, not the creation.
    conversation(ctx, "backdated", created=days(5), messages=(days(100),))
    conversation(ctx, "at_cutoff", created=days(120), messages=(days(90),))
    conversation(ctx, "live", created=days(120), messages=(days(100),))
    conversation(ctx, "done", created=days(120), messages=(days(100),))
    add_followup(ctx, id="f-live", conversation_id="live", status="pending")
    add_followup(ctx, id="f-done", conversation_id="done", status="executed",
                 executed_at=days(1))
    return ctx


def test_old_conversations_go_with_their_messages(seeded: Context) -> None:
    result = cleanup(seeded, conversations_older_than_days=90, batch=2)
    assert result.counts["conversations"] == 4 and result.counts["messages"] == 4
    assert result.conversations_kept_live == 1
    ids, messages = remaining(seeded)
    assert ids == {"recent", "empty_new", "at_cutoff", "live"}
    assert messages == 2 + 1 + 1  # recent's two, at_cutoff's and live's
    assert result.batches >= 2  # 4 conversations, 2 per transaction


def test_a_conversation_a_live_followup_points_at_is_kept_until_it_ends(
        seeded: Context) -> None:
    cleanup(seeded, conversations_older_than_days=90)
    assert "live" in remaining(seeded)[0]
    with seeded.db.transaction() as conn:
        conn.execute(sa.text("UPDATE scheduled_followups SET status = 'executed' "
                             "WHERE id = 'f-live'"))
    again = cleanup(seeded, conversations_older_than_days=90)
    assert again.counts["conversations"] == 1 and "live" not in remaining(seeded)[0]


def test_dry_run_counts_and_deletes_nothing(seeded: Context) -> None:
    before = remaining(seeded)
    result = cleanup(seeded, conversations_older_than_days=90, dry_run=True)
    assert (result.counts["conversations"], result.counts["messages"]) == (4, 4)
    assert result.to_json()["conversations_kept_live"] == 1
    assert remaining(seeded) == before


def test_off_by_default(seeded: Context) -> None:
    result = cleanup(seeded)
    assert "conversations" not in result.counts and len(remaining(seeded)[0]) == 8


def test_a_retention_shorter_than_the_inactivity_period_warns(seeded: Context) -> None:
    assert cleanup(seeded, conversations_older_than_days=400).warnings == []
    short = cleanup(seeded, conversations_older_than_days=20, dry_run=True)
    assert "REENGAGEMENT_INACTIVE_DAYS" in short.warnings[0]


@pytest.mark.parametrize("days", [-1.0, float("nan"), float("inf"), 1e9])
def test_bad_days_are_refused(ctx: Context, days: float) -> None:
    with pytest.raises(InputError, match="conversation retention"):
        cleanup(ctx, conversations_older_than_days=days)


@pytest.mark.postgres
def test_a_conversation_written_to_while_retention_deletes_it_stays(pg_url: str) -> None:
    """The chat application inserts a message into an expired conversation (uncommitted:
    it holds a lock on the conversation) and commits while retention's DELETE waits for
    it. The DELETE went on without checking its rule again and the cascade took the new
    message: the conversation and both messages were gone, and the report said one
    message."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import psycopg2

    setup = psycopg2.connect(pg_url)
    setup.autocommit = True
    with setup.cursor() as cur:
        for cid in ("c0", "c1", "c2"):  # c1 is the one written to; c0 and c2 go
            cur.execute("INSERT INTO ai_conversations (id, user_id, created_at) VALUES"
                        " (%s, 'u1', now() - interval '400 days')", (cid,))
            cur.execute("INSERT INTO ai_messages (id, conversation_id, user_id, role,"
                        " content, created_at) VALUES (%s, %s, 'u1', 'user', 'old',"
                        " now() - interval '400 days')", ("old-" + cid, cid))
    chat = psycopg2.connect(pg_url)  # a user writes again, right now
    with chat.cursor() as cur:
        cur.execute("INSERT INTO ai_messages (id, conversation_id, user_id, role, content,"
                    " created_at) VALUES ('new', 'c1', 'u1', 'user', 'I am back', now())")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOLLOWUP_")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "followup"), "cleanup",
         "--conversations-older-than-days", "365", "--yes", "--json"],
        env={**env, "DATABASE_URL": pg_url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:  # until the DELETE waits for the chat's lock
        wait_for_followup_to_wait_on_a_lock(
            pg_url, "retention's DELETE never waited for the chat's insert")
    finally:
        chat.commit()
        chat.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    with setup.cursor() as cur:
        cur.execute("SELECT conversation_id, id FROM ai_messages ORDER BY 1, 2")
        assert cur.fetchall() == [("c1", "new"), ("c1", "old-c1")]
        cur.execute("SELECT id FROM ai_conversations")
        assert cur.fetchall() == [("c1",)]
    setup.close()
    counts = json.loads(out)["counts"]
    assert (counts["conversations"], counts["messages"]) == (2, 2)


@pytest.mark.postgres
def test_retention_still_deletes_with_track_counts_off(pg_url: str,
                                                       caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    """The check of the cascade's count reads a statistics counter that stays at 0 with
    track_counts off: retention must not then keep every conversation (it would fail the
    check every time and delete nothing, with exit 0); it deletes as before and says why
    it cannot check."""
    import psycopg2

    from followup_cli.settings import load_settings

    admin = psycopg2.connect(pg_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"ALTER DATABASE {admin.info.dbname} SET track_counts = off")
    admin.close()
    ctx = Context(load_settings({"DATABASE_URL": pg_url}))
    try:
        old = ctx.now() - timedelta(days=400)
        conversation(ctx, "c1", created=old, messages=(old,))
        with caplog.at_level("WARNING"):
            result = cleanup(ctx, conversations_older_than_days=365)
        assert (result.counts["conversations"], result.counts["messages"]) == (1, 1)
        assert remaining(ctx) == (set(), 0)
        assert "track_counts is off" in caplog.text
    finally:
        ctx.close()

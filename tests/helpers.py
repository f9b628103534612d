"""Test helpers that write the way the chat application does: straight into the tables."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from followup_cli.db.schema import ai_conversations, ai_messages
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.service.context import Context

_seq = itertools.count()


def add_conversation(ctx: Context, conversation_id: str, user_id: str,
                     scores: Sequence[float | None], *, at: datetime | None = None,
                     role: str = "user") -> None:
    """A conversation whose messages carry `scores` in order, one minute apart, the last at
    `at` (default: an hour before the context's now)."""
    end = at or (ctx.now() - timedelta(hours=1))
    start = end - timedelta(minutes=len(scores))
    with ctx.db.transaction() as conn:
        exists = conn.execute(sa.select(ai_conversations.c.id).where(
            ai_conversations.c.id == conversation_id)).first()
        if not exists:
            conn.execute(sa.insert(ai_conversations).values(
                id=conversation_id, user_id=user_id, created_at=start))
        messages = [
            {"id": f"m{next(_seq)}-{conversation_id}", "conversation_id": conversation_id,
             "user_id": user_id, "role": role, "content": "hello",
             "emotion_score": score, "created_at": start + timedelta(minutes=i + 1)}
            for i, score in enumerate(scores)
        ]
        if messages:
            conn.execute(sa.insert(ai_messages), messages)


def rows(ctx: Context) -> list[dict[str, Any]]:
    with ctx.db.transaction(readonly=True) as conn:
        return [dict(r) for r in conn.execute(
            sa.select(sf).order_by(sf.c.created_at, sf.c.id)).mappings()]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def add_followup(ctx: Context, **fields: Any) -> str:
    """Write one scheduled_followups row directly (as crafted state for operator tests);
    `fields` override the defaults (a pending post-event due at the context's now)."""
    now = ctx.now()
    row: dict[str, Any] = {
        "id": f"f{next(_seq)}", "conversation_id": "c1", "user_id": "u1",
        "trigger_type": "post_event", "trigger_data": {}, "scheduled_at": now,
        "status": "pending", "template_id": "post_event_neutral_emotion",
        "message_content": "hello", "created_at": now, "retry_count": 0,
    }
    row.update(fields)
    row.setdefault("next_attempt_at", row["scheduled_at"])
    with ctx.db.transaction() as conn:
        conn.execute(sa.insert(sf), [row])
    return str(row["id"])


def command_then_print(db_url: str, args: list[str], expression: str, *, exit_code: int = 0,
                       **env: str) -> list[str]:
    """Run a followup command in a fresh interpreter (it must exit with `exit_code`), then
    print `expression` there (about sys.modules, say); the lines printed, the expression's
    last. `env`: more settings (FOLLOWUP_SENDER=...)."""
    code = (
        "import sys\n"
        "from followup_cli.cli.app import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exit:\n"
        f"    assert (exit.code or 0) == {exit_code}, exit.code\n"
        f"print({expression})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code],
                          env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()


def wait_for_followup_to_wait_on_a_lock(pg_url: str, what: str, timeout: float = 30) -> None:
    """Return once a followup process (application_name 'followup') waits on a lock in
    the database at `pg_url`; fail the test, saying `what` never happened, after
    `timeout` seconds."""
    import time

    import psycopg2
    import pytest

    watcher = psycopg2.connect(pg_url)
    watcher.autocommit = True
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with watcher.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                            " 'followup' AND wait_event_type = 'Lock'")
                if cur.fetchone()[0]:
                    return
            time.sleep(0.05)
        pytest.fail(what)
    finally:
        watcher.close()

"""On a terminal, cleanup and forget-user ask first: run under a pseudo-terminal."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from followup_cli.service.context import Context
from tests.conftest import FakeClock, MakeCtx
from tests.helpers import add_conversation, add_followup, rows

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")


def on_terminal(url: str, args: list[str], answer: str) -> tuple[int, str]:
    """Run followup with a pseudo-terminal as stdin and stdout; answer its question."""
    master, slave = os.openpty()
    env = {**os.environ, "DATABASE_URL": url, "COLUMNS": "120", "TERM": "dumb"}
    proc = subprocess.Popen([sys.executable, "-m", "followup_cli", *args], stdin=slave,
                            stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
                if not answered and b"[y/N]" in seen:
                    os.write(master, answer.encode() + b"\n")
                    answered = True
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, seen.decode("utf-8", "replace")


@pytest.fixture
def ctx_now(make_ctx: MakeCtx, clock: FakeClock) -> Context:
    from followup_cli.timeutil import utcnow

    clock.now = utcnow()
    return make_ctx()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_forget_user_asks_on_a_terminal(db_url: str, ctx_now: Context) -> None:
    add_conversation(ctx_now, "c-a", "alice", [0.5])
    add_followup(ctx_now, user_id="alice")
    code, screen = on_terminal(db_url, ["forget-user", "alice"], "n")
    assert code == 0, screen
    assert "1 followups" in screen and "aborted" in screen
    assert len(rows(ctx_now)) == 1
    code, screen = on_terminal(db_url, ["forget-user", "alice"], "y")
    assert code == 0, screen
    assert "deleted 1 follow-ups, 1 messages, 1 conversations" in screen
    assert rows(ctx_now) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cleanup_asks_on_a_terminal(db_url: str, ctx_now: Context) -> None:
    add_followup(ctx_now, status="executed", executed_at=ctx_now.now() - timedelta(days=99))
    code, screen = on_terminal(db_url, ["cleanup"], "y")
    assert code == 0, screen
    assert "Delete 1 executed rows?" in screen
    assert rows(ctx_now) == []

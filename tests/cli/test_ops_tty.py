"""On a terminal, cleanup and forget-user ask first: run under a pseudo-terminal."""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest

from followup_cli.service.context import Context
from tests.acceptance.test_interrupt_and_terminal import on_terminal as pty_run
from tests.acceptance.test_interrupt_and_terminal import plain
from tests.acceptance.test_run_due_concurrent import clean_env
from tests.conftest import FakeClock, MakeCtx
from tests.helpers import add_conversation, add_followup, rows

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")


def on_terminal(url: str, args: list[str], answer: str) -> tuple[int, str]:
    """Run followup on a pseudo-terminal and answer its question; the screen as text."""
    code, screen = pty_run(args, clean_env(url), columns=120, answer=answer)
    return code, plain(screen)


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

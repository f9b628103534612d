"""Real processes: Ctrl-C exits 130 with one line (problem 8), and on a real 80-column
terminal `list` shows ids whole and `schedule import` draws its bar (problems 5, 6)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.acceptance.test_run_due_concurrent import clean_env, followup_argv

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc and needs a pseudo-terminal")


def default_sigint() -> None:
    """In the child before exec: SIGINT as a shell user's terminal gives it. A test runner
    started in the background (`cmd &` in a script) has SIGINT ignored, the child would
    inherit that, and Python then installs no KeyboardInterrupt at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_until_reading_stdin(proc: subprocess.Popen[bytes]) -> None:
    """Until the process blocks on its stdin pipe (start-up done, the command running)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        wchan = Path(f"/proc/{proc.pid}/wchan").read_text(errors="replace")
        if "pipe_read" in wchan:
            return
        time.sleep(0.05)
    raise AssertionError(f"never blocked on stdin (wchan {wchan!r})")


@pytest.mark.parametrize("json_mode", [False, True])
def test_ctrl_c_exits_130_with_one_line(sqlite_url: str, json_mode: bool) -> None:
    args = [*followup_argv(), "schedule", "import", "--format", "jsonl", "-"]
    proc = subprocess.Popen([*args, *(["--json"] if json_mode else [])],
                            env=clean_env(sqlite_url), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=default_sigint)
    try:
        wait_until_reading_stdin(proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.decode().splitlines() == ["followup: error: interrupted"]
    if json_mode:
        assert json.loads(out) == {"error": {"message": "interrupted", "exit_code": 130}}
    else:
        assert out == b""


def on_terminal(args: list[str], env: dict[str, str], *, columns: int = 80,
                answer: str | None = None, interrupt_at: bytes | None = None
                ) -> tuple[int, str]:
    """Run followup on a pseudo-terminal of `columns` columns, typing `answer` at its
    `[y/N]` question or interrupting it at `interrupt_at`; returns (exit code, screen)."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**env, "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen([*followup_argv(), *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, start_new_session=True, preexec_fn=default_sigint)
    os.close(slave)
    screen = b""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                screen += chunk
                if answer is not None and b"[y/N]" in screen:
                    os.write(master, answer.encode() + b"\n")
                    answer = None
                if interrupt_at is not None and interrupt_at in screen:
                    proc.send_signal(signal.SIGINT)
                    interrupt_at = None
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, screen.decode("utf-8", "replace")


def plain(screen: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "")


def test_on_an_80_column_terminal(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"type": "post_event", "user_id": f"u{i}",
                                        "conversation_id": f"c{i}",
                                        "event_date": "2026-11-14T18:00"}) + "\n"
                            for i in range(5000)), encoding="utf-8")
    env = clean_env(sqlite_url)
    code, screen = on_terminal(["schedule", "import", str(path)], env)
    assert code == 0, screen
    assert "scheduling" in screen and "━" in screen  # the bar was drawn
    assert "5000 scheduled" in plain(screen)
    code, screen = on_terminal(["list", "--limit", "3"], env)
    assert code == 0, screen
    text = plain(screen)
    ids = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text)
    assert len(ids) == 3 and "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "3 of 5000 shown" in text
    # and the prefix seen there is enough to find it
    code, screen = on_terminal(["show", ids[0][:8]], env)
    assert code == 0 and ids[0] in plain(screen)


def test_ctrl_c_at_a_question_exits_130(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"type": "reengagement", "user_id": "alice"}) + "\n",
                    encoding="utf-8")
    env = clean_env(sqlite_url)
    assert subprocess.run([*followup_argv(), "schedule", "import", str(path)], env=env,
                          capture_output=True).returncode == 0
    code, screen = on_terminal(["forget-user", "alice"], env, interrupt_at=b"[y/N]")
    assert code == 130, screen
    assert plain(screen).strip().splitlines()[-1] == "followup: error: interrupted"

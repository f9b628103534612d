"""Each case issue 8 reproduced on the old engine, as a real `followup` process against a
real receiver, command, file or lock (the numbers are the issue's)."""

from __future__ import annotations

import json
import resource
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2
import pytest

from tests.faults.conftest import (
    Receiver,
    followup_env,
    run,
    seed_due,
    sql,
    start,
    statuses,
    wait_until,
)


@pytest.mark.postgres
def test_5_a_row_locked_by_another_session_stalls_nothing(pg_url: str,
                                                          receiver: Receiver) -> None:
    """Another session holding a row lock on a follow-up whose lease has expired made every
    run-due wait 30 s in lease recovery and exit 4, delivering nothing. Now recovery and
    the claim skip it."""
    ids = seed_due(pg_url, 20)
    sql(pg_url, "UPDATE scheduled_followups SET status = 'processing', locked_by = 'dead', "
                "locked_until = now() - interval '1 minute' WHERE id = :id", id=ids[0])
    blocker = psycopg2.connect(pg_url)
    try:
        with blocker.cursor() as cur:
            cur.execute("SELECT id FROM scheduled_followups WHERE id = %s FOR UPDATE",
                        (ids[0],))
            began = time.monotonic()
            done = run(["run-due"], followup_env(pg_url, FOLLOWUP_SENDER=f"webhook:{receiver.url}"))
            took = time.monotonic() - began
        assert done.returncode == 0, done.stderr
        assert took < 20  # it used to wait the whole 30 s statement timeout, then exit 4
        assert set(receiver.counts()) == set(ids[1:])
    finally:
        blocker.rollback()
        blocker.close()
    assert statuses(pg_url) == {"executed": 19, "processing": 1}  # left for the next pass


class Trickler:
    """Answers each request with its status line and headers one byte every `interval`."""

    def __init__(self, interval: float = 1.0) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.requests = 0
        self.stop = threading.Event()
        self.interval = interval
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.requests += 1
            try:
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                    if self.stop.wait(self.interval):
                        return
                    conn.send(bytes([byte]))
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_1_a_trickling_receiver_cannot_make_a_live_pass_lose_its_claim(pg_url: str) -> None:
    """A receiver trickling its answer kept one send alive for 19-25 s against a 10 s
    lease; a second pass took the row back and delivered it again, stamping "lease
    expired: the pass holding it died" though nothing died."""
    trickler = Trickler()
    try:
        [fid] = seed_due(pg_url, 1)
        env = followup_env(pg_url, FOLLOWUP_SENDER=f"webhook:{trickler.url}")
        first = start(["run-due"], env)
        wait_until(lambda: trickler.requests == 1)
        time.sleep(11)  # past the 10 s lease the first pass took
        second = run(["run-due"], env)
        assert second.returncode == 0, second.stderr
        _out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        assert trickler.requests == 1  # never sent twice
        [(status, error)] = sql(pg_url, "SELECT status, error_message FROM "
                                        "scheduled_followups WHERE id = :id", id=fid)
        assert status == "pending" and "timed out" in error and "lease" not in error
    finally:
        trickler.close()


def test_4_a_command_that_leaves_a_background_child_is_delivered_once(
        sqlite_url: str, tmp_path: Path) -> None:
    """A command sender that delivered, exited 0 and left `... &` behind was recorded as
    timed out after 30 s, retried, delivered again, and ended failed."""
    seed_due(sqlite_url, 1)
    log = tmp_path / "delivered"
    script = tmp_path / "notify.sh"
    script.write_text(f'#!/bin/sh\ncat >> "{log}"\necho >> "{log}"\nsleep 60 &\nexit 0\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    began = time.monotonic()
    done = run(["run-due"], followup_env(sqlite_url, FOLLOWUP_SENDER=f"command:{script}"))
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - began < 20
    assert statuses(sqlite_url) == {"executed": 1}
    assert len(log.read_text().splitlines()) == 1  # one delivery


def _small_disk() -> None:
    # A file size limit makes writes short, as a full disk does; SIGXFSZ is ignored
    # (Python ignores it anyway) so the write returns short instead of killing us.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))


@pytest.mark.postgres  # the limit would hit an SQLite database file too
def test_7_a_short_write_leaves_only_whole_lines(pg_url: str, tmp_path: Path) -> None:
    """On a full disk a short write's partial line was glued onto the next delivery's
    line, which was then unparseable though its row was executed."""
    ids = seed_due(pg_url, 5)
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "earlier"}\n')
    env = followup_env(pg_url, FOLLOWUP_SENDER=f"file:{out}")
    full = run_limited(["run-due"], env)
    assert full.returncode == 0, full.stderr
    assert out.read_text() == '{"id": "earlier"}\n'  # truncated back: whole lines only
    assert statuses(pg_url) == {"pending": 5}  # a retryable failure, nothing lost
    sql(pg_url, "UPDATE scheduled_followups SET next_attempt_at = scheduled_at")
    done = run(["run-due"], env)  # room on the disk again
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["id"] for d in lines] == ["earlier", *ids]
    assert statuses(pg_url) == {"executed": 5}


def run_limited(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`followup ARGS` on a "disk" that fills up after 600 bytes of any file it writes."""
    return subprocess.run([sys.executable, "-m", "followup_cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False,
                          preexec_fn=_small_disk)


@pytest.mark.slow
def test_10_a_killed_scan_leaves_no_run_record_running(sqlite_url: str) -> None:
    """A killed scan-inactive left its followup_runs row `running` for ever; the next scan
    closes it as abandoned."""
    from datetime import UTC, datetime, timedelta

    old = (datetime.now(UTC) - timedelta(days=60)).strftime("%Y-%m-%d %H:%M:%S.%f")
    _seed_users(sqlite_url, 60_000, old)  # enough for the scan to take a few seconds
    env = followup_env(sqlite_url)
    proc = start(["scan-inactive"], env)
    wait_until(lambda: sql(sqlite_url, "SELECT count(*) FROM followup_runs "
                                       "WHERE kind = 'scan-inactive'")[0][0] == 1)
    proc.kill()
    proc.wait(timeout=30)
    [(status,)] = sql(sqlite_url, "SELECT status FROM followup_runs")
    assert status == "running"
    done = run(["scan-inactive"], env)
    assert done.returncode == 0, done.stderr
    found = dict(sql(sqlite_url, "SELECT status, count(*) FROM followup_runs GROUP BY status"))
    assert found == {"abandoned": 1, "ok": 1}


def _seed_users(url: str, n: int, at: str) -> None:
    rows_c = [{"id": f"c{i}", "user_id": f"u{i}", "at": at} for i in range(n)]
    import sqlalchemy as sa

    from followup_cli.settings import normalize_database_url

    engine = sa.create_engine(normalize_database_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO ai_conversations (id, user_id, created_at) "
                             "VALUES (:id, :user_id, :at)"), rows_c)
        conn.execute(sa.text("INSERT INTO ai_messages (id, conversation_id, user_id, role, "
                             "content, emotion_score, created_at) VALUES ('m' || :id, :id, "
                             ":user_id, 'user', 'hi', 0.5, :at)"), rows_c)
    engine.dispose()


@pytest.mark.postgres
def test_6_forget_user_completes_beside_a_dead_pass_claim(pg_url: str) -> None:
    """forget-user exited 3 for ever while a dead pass's claim sat in `processing` (with
    SCHEDULER_ENABLED=false nothing ever recovered it)."""
    [fid] = seed_due(pg_url, 1)
    sql(pg_url, "UPDATE scheduled_followups SET status = 'processing', locked_by = 'dead', "
                "locked_until = now() - interval '1 minute'")
    env = followup_env(pg_url, SCHEDULER_ENABLED="false")
    done = run(["forget-user", "u0", "--yes"], env)
    assert done.returncode == 0, done.stderr
    assert "u0" not in done.stderr
    assert statuses(pg_url) == {}
    assert fid

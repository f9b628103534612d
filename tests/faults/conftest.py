"""The fault tier: real `followup` processes killed, signalled, starved and lied to, against
a real HTTP receiver that counts every id it is sent and when."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from followup_cli.settings import normalize_database_url


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 200 after `delay` seconds and records
    (id, monotonic arrival) for every request."""

    delay: float = 0.0
    arrivals: list[tuple[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        import json

        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with lock:
                    receiver.arrivals.append((json.loads(body)["id"], time.monotonic()))
                if receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    self.send_response(200)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a sender killed mid-request is the point of these tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def counts(self) -> Counter[str]:
        return Counter(fid for fid, _ in self.arrivals)

    def wait_for(self, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"the receiver got {len(self.arrivals)} of {n}")
            time.sleep(0.01)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def seed_due(url: str, n: int, *, prefix: str = "f", minutes_ago: float = 5) -> list[str]:
    """n pending follow-ups due a few minutes ago, written the way a bulk import leaves them
    (one multi-row INSERT per 5,000). Returns their ids, in due order."""
    engine = sa.create_engine(normalize_database_url(url))
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    ids = [f"{prefix}-{i:07d}" for i in range(n)]
    rows = [{"id": fid, "conversation_id": f"c{i}", "user_id": f"u{i}",
             "trigger_type": "post_event", "trigger_data": {"event_date": "x"},
             "scheduled_at": at + timedelta(microseconds=i),
             "next_attempt_at": at + timedelta(microseconds=i), "status": "pending",
             "template_id": "post_event_neutral_emotion", "message_content": f"hello {i}",
             "created_at": at, "retry_count": 0} for i, fid in enumerate(ids)]
    from followup_cli.db.schema import scheduled_followups as sf

    with engine.begin() as conn:
        for start in range(0, n, 5000):
            conn.execute(sa.insert(sf), rows[start:start + 5000])
    engine.dispose()
    return ids


def statuses(url: str) -> Counter[str]:
    engine = sa.create_engine(normalize_database_url(url))
    with engine.connect() as conn:
        found = Counter({s: int(n) for s, n in conn.execute(sa.text(
            "SELECT status, count(*) FROM scheduled_followups GROUP BY status"))})
    engine.dispose()
    return found


def sql(url: str, statement: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(normalize_database_url(url))
    with engine.begin() as conn:
        result = conn.execute(sa.text(statement), params)
        rows = list(result) if result.returns_rows else []
    engine.dispose()
    return rows


def followup_env(url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FOLLOWUP_", "SCHEDULER_", "REENGAGEMENT_"))}
    env.update({"DATABASE_URL": url, "FOLLOWUP_LEASE_SECONDS": "10", **settings})
    return env


def start(args: list[str], env: dict[str, str], *, prefix: list[str] | None = None,
          **popen: Any) -> subprocess.Popen[str]:
    """`followup ARGS` as cron would start it (optionally under a wrapper like faketime)."""
    return subprocess.Popen([*(prefix or []), sys.executable, "-m", "followup_cli", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def run(args: list[str], env: dict[str, str], timeout: float = 120
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "followup_cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def drain(url: str, env: dict[str, str], *, passes: int = 10) -> None:
    """Run passes until nothing is pending or held any more."""
    for _ in range(passes):
        left = statuses(url)
        if not left["pending"] and not left["processing"]:
            return
        done = run(["run-due", "--concurrency", "8"], env)
        assert done.returncode == 0, done.stderr
    raise AssertionError(f"still not drained: {statuses(url)}")


def wait_until(predicate: Any, timeout: float = 30, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(step)


def pg_bin(name: str) -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        pytest.skip(f"no PostgreSQL server binaries ({name}) on this machine")
    return found[-1]

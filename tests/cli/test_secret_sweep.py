"""The secret sweep: every command, at every verbosity, with secrets of recognisable junk in
every form a database URL, a webhook sender and the key settings take, on reachable and
unreachable databases (so the error paths print too). "JUNK" must never appear in stdout
or stderr, nor the webhook secret or the encryption key.

A new command fails `test_the_sweep_covers_every_command` until it has a line in SWEEP.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from followup_cli.cli import app as app_module
from followup_cli.cli.app import app
from tests.cli.test_help import IDS

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"JUNK-webhook-secret-bytes").decode()
KEY = base64.urlsafe_b64encode(b"JUNK-encryption-key-32-bytes-xyz").decode()
assert len(base64.urlsafe_b64decode(KEY)) == 32
NEEDLES = ("JUNK", WEBHOOK_SECRET.removeprefix("whsec_"), KEY)

UNREACHABLE = "127.0.0.1:1/nowhere"
# name -> environment; "{pg}" and "{sqlite}" are filled with a live test database.
ENVS: dict[str, dict[str, str]] = {
    "userinfo": {"DATABASE_URL": f"postgresql://app:JUNKa1@{UNREACHABLE}"},
    # unescaped ? # / inside the password: the case
    "unescaped": {"DATABASE_URL": f"postgresql://app:JUNKb1?JUNKb2#JUNKb3/JUNKb4@{UNREACHABLE}"},
    # an unescaped @: SQLAlchemy takes JUNKc2@127.0.0.1 for the host and the driver says so
    "at-sign": {"DATABASE_URL": f"postgresql+psycopg2://app:JUNKc1@JUNKc2@{UNREACHABLE}"},
    "query": {"DATABASE_URL": f"postgresql://app@{UNREACHABLE}?sslpassword=JUNKd1"
                              "&password=JUNKd2&sslmode=disable"},
    "dsn": {"DATABASE_URL": "host=127.0.0.1 port=1 password=JUNKe1 sslpassword='JUNK e2'"},
    "bad-sender": {"DATABASE_URL": "{sqlite}",
                   "FOLLOWUP_SENDER": "webhok:https://h.example/?sig=JUNKf1"},
    "live-postgres": {"DATABASE_URL": "{pg}", "FOLLOWUP_ENCRYPTION_KEY": KEY,
                      "FOLLOWUP_SENDER": "webhook:http://127.0.0.1:1/hook?token=JUNKg1",
                      "FOLLOWUP_WEBHOOK_SECRET": WEBHOOK_SECRET},
    # not migrated: every command fails with the schema error (until db upgrade runs)
    "unmigrated-postgres": {"DATABASE_URL": "{pg_empty}"},
    "live-sqlite": {"DATABASE_URL": "{sqlite}", "FOLLOWUP_ENCRYPTION_KEY": f"{KEY},{KEY}",
                    "FOLLOWUP_SENDER": "webhook:http://JUNKh1:JUNKh2@127.0.0.1:1/h?key=JUNKh3",
                    "FOLLOWUP_WEBHOOK_SECRET": WEBHOOK_SECRET},
}
OVERRIDE = {"--database-url": f"postgresql://app:JUNKi1?JUNKi2@{UNREACHABLE}"}

FOLLOWUP_ID = "5f0c6d1e-8a8f-4c1e-9f59-2f7d0c6f1b2a"
# Every command with arguments that get it past parsing, in an order where each finds
# something to work on (schedule before run-due, which then fails against the webhook).
SWEEP: list[tuple[str, list[str]]] = [
    ("schedule post-event", ["--user-id", "u1", "--conversation-id", "c1", "--event-date",
                             "2020-01-01T10:00", "--custom-message", "private note"]),
    ("schedule reengagement", ["--user-id", "u2"]),
    ("schedule import", ["{bookings}"]),
    ("conversations import", ["{history}"]),
    ("run-due", []),
    ("scan-inactive", []),
    ("health", []),
    ("stats", []),
    ("list", []),
    ("show", [FOLLOWUP_ID, "--show-message"]),
    ("retry", [FOLLOWUP_ID]),
    ("cancel", [FOLLOWUP_ID]),
    ("cleanup", ["--yes", "--conversations-older-than-days", "400"]),
    ("forget-user", ["u2", "--yes"]),
    ("demo", ["--yes"]),
    ("templates list", []),
    ("templates preview", ["post_event_high_emotion"]),
    ("templates explain", ["--conversation-id", "c1"]),
    ("serve", ["--bind", "127.0.0.1:0"]),
    ("db current", []),
    ("db upgrade", []),
    ("db reencrypt", []),
    ("db grants", ["--scheduler", "nobody_s", "--monitor", "nobody_m"]),
]
VERBOSITY = {"plain": ([], []), "json": ([], ["--json"]), "verbose": (["-v"], [])}


def test_the_sweep_covers_every_command() -> None:
    assert sorted(name for name, _ in SWEEP) == sorted(IDS)


@pytest.fixture
def logs_to_stderr() -> Iterator[None]:
    """What main() sets up: -v log lines and tracebacks on stderr, through the handler."""
    root = logging.getLogger()
    before = list(root.handlers)
    app_module._configure_logging()
    yield
    for handler in root.handlers[:]:
        if handler not in before:
            root.removeHandler(handler)


def _files(tmp_path: Path) -> dict[str, str]:
    bookings = tmp_path / "bookings.jsonl"
    bookings.write_text(json.dumps({"type": "post_event", "user_id": "u3",
                                    "conversation_id": "c3", "event_date": "2020-02-01T10:00",
                                    "custom_message": "another"}) + "\n", encoding="utf-8")
    history = tmp_path / "history.jsonl"
    history.write_text(json.dumps({"conversation_id": "c1", "user_id": "u1", "role": "user",
                                   "content": "hello", "emotion_score": 0.8,
                                   "created_at": "2019-01-01T10:00:00Z"}) + "\n",
                       encoding="utf-8")
    return {"bookings": str(bookings), "history": str(history)}


def _sweep(env: dict[str, str], root_args: list[str], tail: list[str], tmp_path: Path,
           extra: dict[str, list[str]] | None = None) -> list[tuple[str, int, str]]:
    """Run every command (with `extra` options for some); returns (command, exit code,
    everything it printed)."""
    files = _files(tmp_path)
    runner = CliRunner()
    seen = []
    for name, args in SWEEP:
        argv = [*root_args, *name.split(), *(a.format(**files) for a in args),
                *(extra or {}).get(name, []), *tail]
        if name == "serve":  # it blocks: a real process, asked once per endpoint
            seen.append((name, *_serve_once(argv, env)))
            continue
        result = runner.invoke(app, argv, env=env)
        printed = f"{result.stdout}\n{result.stderr}\n{result.output}"
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            printed += repr(result.exception)
        seen.append((name, result.exit_code, printed))
    return seen


def _serve_once(argv: list[str], env: dict[str, Any]) -> tuple[int, str]:
    """Start `followup serve`, GET both endpoints, stop it; (exit code, all it printed
    and answered)."""
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    full = {k: v for k, v in os.environ.items() if not k.startswith("FOLLOWUP_")}
    full.update({k: str(v) for k, v in env.items() if v is not None})
    proc = subprocess.Popen([sys.executable, "-m", "followup_cli", *argv], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    answered = ""
    found = re.search(r"http://[0-9.]+:\d+", first)
    if found is not None:  # it started (else it said why and exits)
        address = found.group(0)
        for path in ("/api/scheduler/health", "/metrics"):
            try:
                with urllib.request.urlopen(address.rstrip("/") + path, timeout=10) as got:
                    answered += got.read().decode()
            except urllib.error.HTTPError as error:
                answered += error.read().decode()
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, f"{first}{out}\n{err}\n{answered}"


def _leaks(seen: list[tuple[str, int, str]]) -> list[str]:
    return [f"{name} (exit {code}) printed {needle!r}:\n{printed}"
            for name, code, printed in seen for needle in NEEDLES if needle in printed]


@pytest.mark.parametrize("verbosity", list(VERBOSITY))
@pytest.mark.parametrize("case", list(ENVS))
def test_no_secret_is_ever_printed(case: str, verbosity: str, request: pytest.FixtureRequest,
                                   tmp_path: Path, logs_to_stderr: None) -> None:
    env: dict[str, Any] = dict(ENVS[case])
    if env.get("DATABASE_URL") in ("{pg}", "{pg_empty}"):
        fixture = "pg_url" if env["DATABASE_URL"] == "{pg}" else "pg_empty_url"
        env["DATABASE_URL"] = request.getfixturevalue(fixture).replace(
            "postgres@", "postgres:JUNKpg1?JUNKpg2@", 1)  # trust auth: any password works
    elif env.get("DATABASE_URL") == "{sqlite}":
        env["DATABASE_URL"] = request.getfixturevalue("sqlite_url")
    root_args, tail = VERBOSITY[verbosity]
    seen = _sweep(env, root_args, tail, tmp_path)
    leaks = _leaks(seen)
    assert not leaks, leaks[0]
    if case.startswith("live"):  # the commands really ran (the sweep is not all errors)
        codes = dict((name, code) for name, code, _ in seen)
        assert codes["schedule post-event"] == 0 and codes["health"] in (0, 1)
        assert codes["run-due"] == 0 and codes["show"] == 2  # unknown id
    elif case == "unmigrated-postgres":
        assert {code for name, code, _ in seen if name == "health"} == {4}
    else:
        # (serve starts all the same and answers 503 while the database is away)
        assert all(code in (2, 4) for name, code, _ in seen
                   if name not in ("templates list", "templates preview", "serve")), seen


@pytest.mark.parametrize("verbosity", list(VERBOSITY))
def test_no_secret_given_as_an_option_is_printed(verbosity: str, tmp_path: Path,
                                                 sqlite_url: str, logs_to_stderr: None) -> None:
    root_args, tail = VERBOSITY[verbosity]
    unreachable = [*root_args, *(x for kv in OVERRIDE.items() for x in kv)]
    leaks = _leaks(_sweep({}, unreachable, tail, tmp_path))
    assert not leaks, leaks[0]
    # run-due --sender with a token, delivering (and failing) against a live database
    live = [*root_args, "--database-url", sqlite_url]
    sender = ["--sender", "webhook:http://JUNKj1:JUNKj2@127.0.0.1:1/h?token=JUNKj3"]
    seen = _sweep({}, live, tail, tmp_path, {"run-due": sender})
    assert not _leaks(seen), _leaks(seen)[0]
    assert dict((name, code) for name, code, _ in seen)["run-due"] == 0

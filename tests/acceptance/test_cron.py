"""crontab.example, run the way cron runs it: each entry through /bin/sh with the file's
environment lines. Success prints nothing (no mail); a failure prints its exit code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CRONTAB = Path(__file__).resolve().parents[2] / "crontab.example"
ENTRY = re.compile(r"^(\S+\s+){5}(?P<command>.+)$")


def parse() -> tuple[dict[str, str], dict[str, str]]:
    env: dict[str, str] = {}
    commands: dict[str, str] = {}
    for line in CRONTAB.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^[A-Z_]+=", line):
            key, _, value = line.partition("=")
            env[key] = value
            continue
        match = ENTRY.match(line)
        assert match, f"not a cron entry: {line}"
        command = match["command"]
        assert "%" not in command  # cron would turn it into a newline
        name = re.search(r"followup ([a-z-]+)", command)
        assert name
        commands[name[1]] = command
    return env, commands


def test_crontab_has_every_pass_and_the_zone() -> None:
    env, commands = parse()
    assert set(commands) == {"run-due", "scan-inactive", "cleanup", "health"}
    assert env["CRON_TZ"] == env["SCHEDULER_TIMEZONE"]
    assert "MAILTO" in env and "DATABASE_URL" in env


@pytest.mark.slow
def test_entries_are_silent_on_success_and_loud_on_failure(tmp_path: Path) -> None:
    env_lines, commands = parse()
    stub = tmp_path / "bin"
    stub.mkdir()
    log = tmp_path / "syslog"
    (stub / "logger").write_text(f"#!/bin/sh\ncat >> {log}\n", encoding="utf-8")
    (stub / "logger").chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FOLLOWUP_", "SCHEDULER_", "REENGAGEMENT_"))}
    env.update(env_lines)
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'cron.db'}",
                "FOLLOWUP_SENDER": "log",
                "PATH": f"{stub}:{Path(sys.executable).parent}:/usr/bin:/bin"})

    def cron(name: str, **extra: str) -> str:
        done = subprocess.run(["/bin/sh", "-c", commands[name]], env={**env, **extra},
                              capture_output=True, text=True, timeout=50, check=False)
        assert done.returncode == 0  # the entry itself never fails; its output is the mail
        return done.stdout + done.stderr

    assert cron("run-due") == ""
    assert cron("scan-inactive") == ""
    assert cron("cleanup") == ""
    assert cron("health") == ""  # a run-due pass just finished
    assert "scan-inactive" in log.read_text(encoding="utf-8")
    mail = cron("scan-inactive", SCHEDULER_TIMEZONE="Mars/Olympus")
    assert mail.startswith("followup scan-inactive exit 2")
    assert "SCHEDULER_TIMEZONE" in mail

"""`followup demo` on a fresh embedded database, run as a new user would run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def followup_cmd() -> list[str]:
    found = shutil.which("followup")
    return [found] if found else [sys.executable, "-m", "followup_cli"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FOLLOWUP_", "SCHEDULER_", "REENGAGEMENT_", "XDG_"))
           and k != "DATABASE_URL"}
    env.update(extra)
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*followup_cmd(), *args], env=env, text=True, capture_output=True,
                          timeout=50, check=False)


def test_demo_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    first = run(env, "demo", "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["delivered"] == 6
    assert {d["template_id"] for d in doc["deliveries"]} == {
        "post_event_high_emotion", "post_event_neutral_emotion", "post_event_low_emotion",
        "reengagement_high_emotion", "reengagement_low_emotion",
        "reengagement_neutral_emotion"}
    again = run(env, "demo")
    assert again.returncode == 0, again.stderr
    assert "replaced the previous demo run" in again.stdout
    assert "\x1b[" not in again.stdout  # no colour without a terminal
    assert "emotion mean" in again.stdout


def test_demo_with_no_database_url_uses_the_default_path(tmp_path: Path) -> None:
    env = clean_env(HOME=str(tmp_path))
    result = run(env, "demo")
    assert result.returncode == 0, result.stderr
    default_db = tmp_path / ".local" / "share" / "followup" / "followup.db"
    assert default_db.is_file()
    assert str(default_db) in result.stdout
    assert "sent 6" in result.stdout

"""What cron mails from a pass, with real `followup` processes as cron starts them: nothing
when all is well, one line per follow-up that failed for good, and a retry summary only
when it is news (the first in an hour, or a new error kind)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from followup_cli.db.schema import followup_runs
from followup_cli.settings import normalize_database_url
from tests.acceptance.test_run_due_concurrent import bulk_insert_due, clean_env, followup_argv

SUMMARY_TAIL = "said again in an hour, or sooner if the error changes"


def run(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*followup_argv(), *args], env=clean_env(url, **env),
                          capture_output=True, text=True, timeout=120, check=False)


def failing(tmp_path: Path, code: int) -> str:
    script = tmp_path / f"fail-{code}.sh"
    script.write_text(f"#!/bin/sh\ncat >/dev/null\nexit {code}\n")
    script.chmod(0o755)
    return f"command:{script}"


@pytest.mark.slow
def test_a_pass_with_nothing_wrong_prints_nothing(db_url: str, tmp_path: Path) -> None:
    out = f"file:{tmp_path / 'out.jsonl'}"
    for args, env in [
        (("run-due", "--sender", out), {}),  # idle
        (("scan-inactive",), {}),
        (("run-due", "--sender", out), {"SCHEDULER_ENABLED": "false"}),  # deliberate
    ]:
        done = run(db_url, *args, **env)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), args
    bulk_insert_due(db_url, 5)
    now = datetime.now(UTC)
    closed = f"{(now + timedelta(hours=12)):%H:%M}-{(now + timedelta(hours=13)):%H:%M}"
    waiting = run(db_url, "run-due", "--sender", out, FOLLOWUP_SEND_WINDOW=closed)
    assert (waiting.returncode, waiting.stdout, waiting.stderr) == (0, "", "")
    delivered = run(db_url, "run-due", "--sender", out)
    assert (delivered.returncode, delivered.stdout, delivered.stderr) == (0, "", "")
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 5


@pytest.mark.slow
def test_each_permanent_failure_is_one_line(db_url: str, tmp_path: Path) -> None:
    bulk_insert_due(db_url, 3, prefix="perm")
    done = run(db_url, "run-due", "--sender", failing(tmp_path, 1),
               FOLLOWUP_MAX_RETRIES="0")
    assert done.returncode == 0, done.stderr  # recorded on the follow-ups, not a crash
    assert sorted(done.stdout.splitlines()) == [
        f"failed: perm-{i:06d} after 1 attempt: command exited with 1" for i in range(3)]


@pytest.mark.slow
def test_a_permanent_failure_is_said_once_not_twice(db_url: str, tmp_path: Path) -> None:
    bulk_insert_due(db_url, 2, prefix="once")
    done = run(db_url, "run-due", "--sender", failing(tmp_path, 1),
               FOLLOWUP_MAX_RETRIES="0")
    assert done.stderr == ""
    assert len(done.stdout.splitlines()) == 2


def age_run_records(url: str, minutes: int) -> None:
    """Move every run record `minutes` into the past (as if the passes ran back then)."""
    engine = sa.create_engine(normalize_database_url(url))
    with engine.begin() as conn:
        for run_id, finished in conn.execute(
                sa.select(followup_runs.c.id, followup_runs.c.finished_at)).all():
            conn.execute(sa.update(followup_runs).where(followup_runs.c.id == run_id).values(
                finished_at=finished - timedelta(minutes=minutes)))
    engine.dispose()


@pytest.mark.slow
def test_retries_are_summarised_when_news_not_every_pass(db_url: str, tmp_path: Path) -> None:
    down = failing(tmp_path, 1)
    bulk_insert_due(db_url, 2, prefix="a")
    first = run(db_url, "run-due", "--sender", down)
    assert (first.stdout, first.stderr) == (
        f"retrying: 2 follow-ups will be retried (command exited with 1: 2); {SUMMARY_TAIL}\n",
        "")
    # a minute later the outage goes on: another follow-up fails the same way, silently
    bulk_insert_due(db_url, 1, prefix="b")
    second = run(db_url, "run-due", "--sender", down)
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    # the error changes: news at once
    bulk_insert_due(db_url, 1, prefix="c")
    changed = run(db_url, "run-due", "--sender", failing(tmp_path, 3))
    assert changed.stdout.startswith("retrying: 1 follow-ups will be retried (command exited "
                                     "with 3: 1)")
    # an hour after the last summary, the same error is said again
    age_run_records(db_url, 61)
    bulk_insert_due(db_url, 1, prefix="d")
    later = run(db_url, "run-due", "--sender", down)
    assert later.stdout.startswith("retrying: 1 follow-ups will be retried (command exited "
                                   "with 1: 1)")

"""The installed `followup`, run the way cron and scripts run it: separate processes
racing on one database. The duplicate and cap rules must hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from followup_cli.settings import normalize_database_url
from tests.helpers import wait_for_followup_to_wait_on_a_lock

FOLLOWUP = str(Path(sys.executable).parent / "followup")


def spawn(url: str, args: list[str], **env: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FOLLOWUP_")}
    environ.update({"DATABASE_URL": url, **env})
    return subprocess.Popen([FOLLOWUP, *args, "--json"], env=environ, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, dict, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=60)
        out.append((p.returncode, json.loads(stdout) if stdout.strip() else {}, stderr))
    return out


def rows(url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(normalize_database_url(url))
    with engine.connect() as conn:
        found = conn.execute(sa.text(
            "SELECT id, status FROM scheduled_followups ORDER BY id")).all()
    engine.dispose()
    return [(r[0], r[1]) for r in found]


def post_args(event: str, user: str = "racer") -> list[str]:
    return ["schedule", "post-event", "--user-id", user, "--conversation-id", "c1",
            "--event-date", event]


@pytest.mark.slow
@pytest.mark.postgres
def test_eight_racing_schedules_leave_one_row_postgres(pg_url: str) -> None:
    _race_same_event(pg_url)


@pytest.mark.slow
def test_eight_racing_schedules_leave_one_row_sqlite(sqlite_url: str) -> None:
    _race_same_event(sqlite_url)


def _race_same_event(url: str) -> None:
    # The same event, written a little differently by each caller (same day, ±hours);
    # a few rounds, since one round may happen not to overlap.
    winners = set()
    for round_no in range(3):
        events = [f"2026-11-14T{10 + i}:00" for i in range(8)]
        results = finish([spawn(url, post_args(e, user=f"racer{round_no}")) for e in events])
        assert all(code == 0 for code, _, _ in results), results
        statuses = sorted(doc["status"] for _, doc, _ in results)
        assert statuses == ["duplicate"] * 7 + ["scheduled"]
        ids = {doc["id"] for _, doc, _ in results}
        assert len(ids) == 1
        winners |= ids
    assert rows(url) == sorted((i, "pending") for i in winners)


@pytest.mark.slow
@pytest.mark.postgres
def test_racing_schedules_respect_the_cap_postgres(pg_url: str) -> None:
    # Eight different events (no duplicates among them), cap 3: exactly 3 are written.
    events = [f"2026-11-{1 + 3 * i:02d}T12:00" for i in range(8)]
    results = finish([spawn(pg_url, post_args(e), FOLLOWUP_MAX_PENDING_PER_USER="3")
                      for e in events])
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 0, 0, 3, 3, 3, 3, 3], results
    assert len(rows(pg_url)) == 3


@pytest.mark.slow
@pytest.mark.postgres
def test_racing_reengagements_leave_one_postgres(pg_url: str) -> None:
    args = ["schedule", "reengagement", "--user-id", "quiet", "--days-inactive", "40"]
    results = finish([spawn(pg_url, args) for _ in range(6)])
    assert all(code == 0 for code, _, _ in results), results
    assert sorted(doc["status"] for _, doc, _ in results) == ["duplicate"] * 5 + ["scheduled"]
    assert len(rows(pg_url)) == 1


def test_help_runs_as_installed_command() -> None:
    proc = subprocess.run([FOLLOWUP, "--help"], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "TERM": "dumb"})
    assert proc.returncode == 0, proc.stderr
    assert "schedule" in proc.stdout and "cancel" in proc.stdout


def test_module_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "followup_cli", "--version"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith("followup ")


@pytest.mark.slow
def test_concurrent_first_use_of_a_fresh_sqlite_file(tmp_path: Path) -> None:
    """Six cron-style processes meeting a database file that does not exist yet: one
    migrates it, the others wait for it, all succeed."""
    url = f"sqlite:///{tmp_path}/fresh/followup.db"
    results = finish([spawn(url, post_args("2026-11-14", user=f"u{i}")) for i in range(6)])
    assert [code for code, _, _ in results] == [0] * 6, results
    assert len(rows(url)) == 6


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
def test_the_rules_hold_whatever_isolation_the_database_defaults_to(pg_url: str,
                                                                    level: str) -> None:
    """A database (or role) whose default isolation is not READ COMMITTED: two bookings of
    one user and event wait for the same guard row; the second must see the first's row.
    Under REPEATABLE READ its snapshot predated the first's commit: both were scheduled."""
    import psycopg2

    first = spawn(pg_url, post_args("2027-01-01T10:00Z"))  # the user's guard row exists
    assert finish([first])[0][0] == 0
    admin = psycopg2.connect(pg_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"ALTER DATABASE {admin.info.dbname} SET default_transaction_isolation"
                    f" = '{level}'")
    admin.close()
    holder = psycopg2.connect(pg_url)
    with holder.cursor() as cur:  # both bookings queue behind this guard lock
        cur.execute("SELECT 1 FROM followup_user_guards WHERE user_id = 'racer' FOR UPDATE")
        procs = [spawn(pg_url, post_args("2026-12-01T10:00Z")) for _ in range(2)]
        time.sleep(1.5)
    holder.commit()
    holder.close()
    results = finish(procs)
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    assert sorted(doc["status"] for _, doc, _ in results) == ["duplicate", "scheduled"]
    assert len(rows(pg_url)) == 2  # the 2027 booking and one of the two


@pytest.mark.slow
@pytest.mark.postgres
def test_a_reengagement_that_loses_to_a_guardless_writer_reports_the_winner(
        pg_url: str) -> None:
    """The original application (which takes no guard row) inserts a live re-engagement
    for the user after followup's duplicate check and commits while followup's insert
    waits on it: the skipped row is a duplicate of that one, reported with its id (it
    was reported with "id": null)."""
    import psycopg2

    app = psycopg2.connect(pg_url)
    with app.cursor() as cur:
        cur.execute(
            "INSERT INTO scheduled_followups (id, conversation_id, user_id, trigger_type,"
            " trigger_data, scheduled_at, status, message_content, created_at) VALUES"
            " ('guide-1', 'c', 'v1', 'reengagement', '{\"days_inactive\": 30}', now(),"
            " 'pending', 'hi', now())")
    proc = spawn(pg_url, ["schedule", "reengagement", "--user-id", "v1"])
    try:  # until followup's insert waits for our row
        wait_for_followup_to_wait_on_a_lock(
            pg_url, "followup's insert never waited for the other writer's row")
    finally:
        app.commit()
        app.close()
    [(code, doc, stderr)] = finish([proc])
    assert code == 0, stderr
    assert (doc["status"], doc["id"]) == ("duplicate", "guide-1")
    assert [fid for fid, _ in rows(pg_url)] == ["guide-1"]

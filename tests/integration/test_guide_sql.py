"""Every SQL query of the operations guide's Monitoring, Troubleshooting and Maintenance
sections (and its right-to-be-forgotten DELETEs), copied verbatim, run against a PostgreSQL
database that followup itself wrote, and checked against what the guide says they mean and
against what followup's own commands report.

The one thing these queries depend on beyond the data: `DATE(executed_at)` and
`CURRENT_DATE` on a timestamptz are evaluated in the session's TimeZone. The test sets the
session TimeZone to the scheduler zone (a zone where it is now about noon, so no row lands
on the other side of midnight), and then the guide's "executed today" equals followup's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from followup_cli.service.browse import list_followups
from followup_cli.service.context import Context
from followup_cli.service.maintenance import cleanup, forget_user
from followup_cli.service.monitoring import check_health, collect_stats
from followup_cli.service.requests import post_event_request, reengagement_request
from followup_cli.service.scheduling import schedule_post_event, schedule_reengagement
from followup_cli.settings import load_settings
from followup_cli.timeutil import utcnow
from tests.helpers import add_conversation

pytestmark = pytest.mark.postgres

# --- the guide's SQL, verbatim, vendored as test data (with its provenance) ---------------

DATA = Path(__file__).resolve().parents[1] / "data" / "guide_sql.txt"


def load_guide_sql(path: Path = DATA) -> dict[str, str]:
    """The entries of tests/data/guide_sql.txt: `-- name: NAME` lines, each followed by the
    guide's text, verbatim (only the newlines at its end dropped)."""
    entries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in [*path.read_text(encoding="utf-8").split("\n"), "-- name: "]:
        if line.startswith("-- name: "):
            if name is not None:
                entries[name] = "\n".join(lines).rstrip("\n")
            name, lines = line.removeprefix("-- name: ").strip(), []
        elif name is not None:
            lines.append(line)
    return entries


GUIDE_SQL = load_guide_sql()
KEY_1_SCHEDULED = GUIDE_SQL["key_1_scheduled"]
KEY_2_EXECUTED_TODAY = GUIDE_SQL["key_2_executed_today"]
KEY_3_FAILED = GUIDE_SQL["key_3_failed"]
KEY_4_EXECUTION_RATE = GUIDE_SQL["key_4_execution_rate"]
KEY_5_TEMPLATES = GUIDE_SQL["key_5_templates"]
ALERT_1_FAILURES = GUIDE_SQL["alert_1_failures"]
ALERT_3_DELAY = GUIDE_SQL["alert_3_delay"]
ALERT_4_BACKLOG = GUIDE_SQL["alert_4_backlog"]
JOBS_NOT_EXECUTING = GUIDE_SQL["jobs_not_executing"]
DUPLICATES = GUIDE_SQL["duplicates"]
CONNECTION_CHECK = GUIDE_SQL["connection_check"]
DAILY_FAILED = GUIDE_SQL["daily_failed"]
DAILY_EXECUTION_RATE = GUIDE_SQL["daily_execution_rate"]
WEEKLY_CLEANUP = GUIDE_SQL["weekly_cleanup"]
WEEKLY_TEMPLATE_PERFORMANCE = GUIDE_SQL["weekly_template_performance"]
MONTHLY_VACUUM = GUIDE_SQL["monthly_vacuum"]
MONTHLY_REINDEX = GUIDE_SQL["monthly_reindex"]
BACKUP = GUIDE_SQL["backup"]
RESTORE = GUIDE_SQL["restore"]
FORGET = GUIDE_SQL["forget"]

# Where the guide itself is (the project's shared/seed/, beside the repository), to check
# that the vendored copy is still verbatim; the tests below never need it.
GUIDE = Path(os.environ.get(
    "FOLLOWUP_OPERATIONS_GUIDE",
    Path(__file__).resolve().parents[3] / "shared/seed/follow-up-scheduler-operations-guide.md"))
QUERIES = [KEY_1_SCHEDULED, KEY_2_EXECUTED_TODAY, KEY_3_FAILED, KEY_4_EXECUTION_RATE,
           KEY_5_TEMPLATES, ALERT_1_FAILURES, ALERT_3_DELAY, ALERT_4_BACKLOG,
           JOBS_NOT_EXECUTING, DUPLICATES, CONNECTION_CHECK, DAILY_FAILED,
           DAILY_EXECUTION_RATE, WEEKLY_CLEANUP, WEEKLY_TEMPLATE_PERFORMANCE, MONTHLY_VACUUM,
           MONTHLY_REINDEX, BACKUP, RESTORE, *FORGET.splitlines()]


def test_every_vendored_entry_is_used() -> None:
    assert len(GUIDE_SQL) == 20 and all(GUIDE_SQL.values())
    assert set(GUIDE_SQL.values()) == {*QUERIES[:-3], FORGET}


@pytest.mark.skipif(not GUIDE.is_file(), reason=f"the operations guide is not at {GUIDE} (set "
                    "FOLLOWUP_OPERATIONS_GUIDE); the vendored copy in tests/data is used as is")
def test_vendored_queries_are_verbatim_copies_of_the_guide() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    for query in QUERIES:
        assert query in text, query


# --- a database written by followup -------------------------------------------------------

def noon_zone(now: datetime) -> str:
    """A fixed-offset zone where it is now about noon: 'today' is hours from midnight."""
    offset = 12 - now.hour  # -11 .. +12
    return f"Etc/GMT{-offset:+d}"  # Etc/GMT-5 is UTC+5


class World:
    def __init__(self, url: str):
        self.url = url
        self.zone = noon_zone(utcnow())
        self.ctx = Context(load_settings({"DATABASE_URL": url, "SCHEDULER_TIMEZONE": self.zone}),
                           clock=utcnow)
        self.engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"),
                                       connect_args={"options": f"-c TimeZone={self.zone}"})

    def post(self, user: str, conv: str, event: datetime, **kw: Any) -> str:
        req = post_event_request(self.ctx.settings.timezone, user_id=user, conversation_id=conv,
                                 event_date=event.isoformat(), delay_hours="0", **kw)
        result = schedule_post_event(self.ctx, req)
        assert result.status == "scheduled"
        return result.id

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        with self.engine.begin() as conn:
            result = conn.exec_driver_sql(query)
            return [tuple(r) for r in result] if result.returns_rows else []

    def write(self, query: str, params: dict[str, Any] | None = None) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(sa.text(query), params or {}).rowcount)

    def close(self) -> None:
        self.ctx.close()
        self.engine.dispose()


@pytest.fixture
def world(pg_url: str) -> Iterator[World]:
    w = World(pg_url)
    now = utcnow()
    m = timedelta(minutes=1)
    ids: dict[str, str] = {}
    add_conversation(w.ctx, "c-happy", "happy", [0.9, 0.9])
    add_conversation(w.ctx, "c-sad", "sad", [0.1])
    # executed in the last hour, 20 and 50 minutes late: mean delay 35 minutes
    ids["late20"] = w.post("happy", "c-happy", now - 40 * m)
    ids["late50"] = w.post("sad", "c-sad", now - 55 * m)
    # executed three days ago, 5 minutes late
    ids["old_exec"] = w.post("u3", "c3", now - timedelta(days=3))
    # executed 100 days ago: the weekly clean-up's target
    ids["ancient"] = w.post("u4", "c4", now - timedelta(days=100))
    # failed within the last hour, three of them
    for i in range(3):
        ids[f"failed{i}"] = w.post(f"f{i}", f"cf{i}", now - timedelta(hours=2 + i))
    # pending: two overdue by more than an hour, one 30 min late, one in the future
    ids["overdue1"] = w.post("p1", "cp1", now - 2 * timedelta(hours=1))
    ids["overdue2"] = w.post("p2", "cp2", now - 3 * timedelta(hours=1))
    ids["late30"] = w.post("p3", "cp3", now - 30 * m)
    ids["future"] = w.post("p4", "cp4", now + timedelta(days=1))
    reeng = schedule_reengagement(w.ctx, reengagement_request(
        w.ctx.settings.timezone, user_id="gone", days_inactive="45",
        at=(now + timedelta(days=2)).isoformat()))
    ids["reeng"] = reeng.id
    add_conversation(w.ctx, "c-gone", "gone", [0.5])
    mark = """UPDATE scheduled_followups SET status = 'executed',
              executed_at = scheduled_at + :delay * INTERVAL '1 minute',
              last_attempt_at = scheduled_at + :delay * INTERVAL '1 minute' WHERE id = :id"""
    for key, delay in (("late20", 20), ("late50", 50), ("old_exec", 5), ("ancient", 1)):
        assert w.write(mark, {"id": ids[key], "delay": delay}) == 1
    for i in range(3):
        w.write("""UPDATE scheduled_followups SET status = 'failed', retry_count = 4,
                   error_message = :err, last_attempt_at = NOW() WHERE id = :id""",
                {"id": ids[f"failed{i}"], "err": f"HTTP 50{i}"})
    w.ids = ids  # type: ignore[attr-defined]
    yield w
    w.close()


# --- Monitoring -----------------------------------------------------------------------------

def test_key_metrics_1_2_scheduled_and_executed_today(world: World) -> None:
    health = check_health(world.ctx)
    assert world.sql(KEY_1_SCHEDULED) == [(5,)]  # 4 post-event + 1 re-engagement
    assert health.pending_jobs == 5
    # late20 and late50 today; old_exec three days ago, ancient 100 days ago
    assert world.sql(KEY_2_EXECUTED_TODAY) == [(2,)]
    assert health.executed_today == 2
    assert world.sql(DAILY_EXECUTION_RATE) == [(2,)]


def test_key_metric_3_failed_jobs(world: World) -> None:
    rows = world.sql(KEY_3_FAILED)
    ids = world.ids  # type: ignore[attr-defined]
    # newest created first: failed2 was scheduled last
    assert [r[0] for r in rows] == [ids["failed2"], ids["failed1"], ids["failed0"]]
    assert rows[0][1:] == ("f2", "HTTP 502", 4)
    stats = collect_stats(world.ctx)
    assert [(f["id"], f["user_id"], f["error_message"], f["retry_count"])
            for f in stats.recent_failures] == rows
    assert world.sql(DAILY_FAILED) == [(3,)]


def test_key_metric_4_execution_rate(world: World) -> None:
    rows = world.sql(KEY_4_EXECUTION_RATE)
    today = datetime.now(UTC).astimezone(world.ctx.settings.timezone).date()
    assert [(r[0], r[1]) for r in rows] == [
        (today, 2), (today - timedelta(days=3), 1), (today - timedelta(days=100), 1)]
    assert float(rows[0][2]) == pytest.approx(35 * 60, abs=0.01)
    assert float(rows[1][2]) == pytest.approx(5 * 60, abs=0.01)
    # followup's per-day figures are the same for the days it covers (the last 7)
    ours = {d.date: d for d in collect_stats(world.ctx).execution_rate if d.executed}
    assert {d: (v.executed, round(v.avg_delay_seconds or 0, 2)) for d, v in ours.items()} == {
        r[0]: (r[1], round(float(r[2]), 2)) for r in rows[:2]}


def test_key_metric_5_and_weekly_template_performance(world: World) -> None:
    distribution = dict(world.sql(KEY_5_TEMPLATES))
    performance = {r[0]: r[1:] for r in world.sql(WEEKLY_TEMPLATE_PERFORMANCE)}
    # everything was created just now, so the 7-day window holds every row
    assert sum(distribution.values()) == 12
    assert distribution["post_event_high_emotion"] == 1  # the happy user
    assert distribution["post_event_low_emotion"] == 1
    assert distribution["reengagement_neutral_emotion"] == 1
    assert performance["post_event_neutral_emotion"] == (9, 2, 3)
    assert performance["post_event_high_emotion"] == (1, 1, 0)
    stats = collect_stats(world.ctx).to_json()
    assert {t["template_id"]: t["count"] for t in stats["template_distribution"]} == (
        distribution)
    assert {t["template_id"]: (t["used"], t["executed"], t["failed"])
            for t in stats["template_performance"]} == performance


def test_alert_queries_match_health(world: World) -> None:
    alerts = {a.name: a for a in check_health(world.ctx).alerts}
    # 1: failures created in the last hour (followup counts by last attempt; the same here)
    assert world.sql(ALERT_1_FAILURES) == [(3,)]
    assert alerts["high_failure_rate"].value == 3
    # 3: mean delay of those executed in the last hour
    [(minutes,)] = world.sql(ALERT_3_DELAY)
    assert float(minutes) == pytest.approx(35, abs=0.001)
    assert alerts["execution_delay"].value == pytest.approx(35, abs=0.001)
    assert alerts["execution_delay"].firing  # > 30
    # 4: pending more than an hour late
    assert world.sql(ALERT_4_BACKLOG) == [(2,)]
    assert alerts["pending_backlog"].value == 2


# --- Troubleshooting ----------------------------------------------------------------------

def test_jobs_not_executing(world: World) -> None:
    ids = world.ids  # type: ignore[attr-defined]
    rows = world.sql(JOBS_NOT_EXECUTING)
    assert [r[0] for r in rows] == [ids["late30"], ids["overdue1"], ids["overdue2"]]
    ours = list_followups(world.ctx, statuses=["pending"],
                          until=datetime.now(UTC).isoformat())
    assert [r["id"] for r in ours.followups] == [r[0] for r in rows]


def test_duplicate_diagnosis(world: World) -> None:
    # followup refuses the duplicate itself, so the diagnosis finds nothing...
    event = datetime.now(UTC) + timedelta(days=5)
    first = world.post("dup", "cd", event)
    again = schedule_post_event(world.ctx, post_event_request(
        world.ctx.settings.timezone, user_id="dup", conversation_id="cd",
        event_date=event.isoformat()))
    assert (again.status, again.id) == ("duplicate", first)
    assert world.sql(DUPLICATES) == []
    # ...and finds one a foreign program wrote (same event date text, as the guide groups)
    world.write("""INSERT INTO scheduled_followups (id, conversation_id, user_id, trigger_type,
                   trigger_data, scheduled_at, status, created_at, next_attempt_at)
                   SELECT 'copy', conversation_id, user_id, trigger_type, trigger_data,
                   scheduled_at, status, created_at, next_attempt_at
                   FROM scheduled_followups WHERE id = :id""", {"id": first})
    [(user, event_date, count)] = world.sql(DUPLICATES)
    assert (user, count) == ("dup", 2)
    assert datetime.fromisoformat(event_date) == event


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_connection_check_with_psql(world: World) -> None:
    out = subprocess.run(["bash", "-c", CONNECTION_CHECK], capture_output=True, text=True,
                         env={**os.environ, "DATABASE_URL": world.url}, timeout=30, check=True)
    assert out.stdout.split()[2] == "12"  # header, rule, the count


# --- Maintenance --------------------------------------------------------------------------

def test_weekly_cleanup_delete_matches_followup_cleanup(world: World) -> None:
    assert cleanup(world.ctx, dry_run=True).counts["executed"] == 1
    with world.engine.begin() as conn:
        assert conn.exec_driver_sql(WEEKLY_CLEANUP).rowcount == 1
    ids = world.ids  # type: ignore[attr-defined]
    assert world.sql(f"SELECT COUNT(*) FROM scheduled_followups WHERE id = '{ids['ancient']}'"
                     ) == [(0,)]
    assert cleanup(world.ctx, dry_run=True).counts["executed"] == 0


def test_monthly_vacuum_analyze_and_reindex(world: World) -> None:
    with world.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(MONTHLY_VACUUM)
        conn.exec_driver_sql(MONTHLY_REINDEX)
    # ANALYZE recorded the table's size; the guide's indexes are there after REINDEX (its
    # user_id index gave way to the wider (user_id, status) one: migration 0004)
    [(tuples,)] = world.sql("SELECT reltuples FROM pg_class WHERE relname = "
                            "'scheduled_followups'")
    assert tuples == 12
    names = {r[0] for r in world.sql(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'scheduled_followups'")}
    assert {"ix_scheduled_followups_conversation_id",
            "ix_scheduled_followups_scheduled_at", "idx_scheduled_followups_status_scheduled",
            "idx_scheduled_followups_user_status"} <= names
    assert check_health(world.ctx).pending_jobs == 5


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed")
def test_backup_and_restore(world: World, pg_empty_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": world.url}
    subprocess.run(["bash", "-c", BACKUP], cwd=tmp_path, env=env, check=True, timeout=60,
                   capture_output=True)
    [dump] = list(tmp_path.glob("scheduler_backup_*.sql"))
    dump.rename(tmp_path / "scheduler_backup_20251102.sql")
    subprocess.run(["bash", "-c", RESTORE], cwd=tmp_path, check=True, timeout=60,
                   env={**os.environ, "DATABASE_URL": pg_empty_url}, capture_output=True)
    restored = sa.create_engine(pg_empty_url.replace("postgresql://", "postgresql+psycopg2://"))
    with restored.connect() as conn:
        counts = [conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar_one()
                  for t in ("scheduled_followups", "ai_conversations", "ai_messages")]
    restored.dispose()
    assert counts == [12, 3, 4]


# --- Security: right to be forgotten ------------------------------------------------------

def test_right_to_be_forgotten_deletes(world: World) -> None:
    # followup's own forget-user counts the same rows the guide's DELETEs remove
    counts: list[dict[str, int]] = []

    def decline(found: dict[str, int]) -> bool:
        counts.append(found)
        return False

    forget_user(world.ctx, "gone", confirm=decline)
    assert counts == [{"followups": 1, "messages": 1, "conversations": 1}]
    deleted = []
    with world.engine.begin() as conn:
        for statement in FORGET.replace("<user_id>", "gone").splitlines():
            deleted.append(conn.exec_driver_sql(statement).rowcount)
    assert deleted == [1, 1, 1]
    for table in ("scheduled_followups", "ai_messages", "ai_conversations"):
        assert world.sql(f"SELECT COUNT(*) FROM {table} WHERE user_id = 'gone'") == [(0,)]
    assert world.sql("SELECT COUNT(*) FROM scheduled_followups") == [(11,)]

"""Least privilege, proven: `followup db grants --apply` for two fresh LOGIN roles, then every
pass and write command as the scheduler role and every read (and dry run) as the monitor
role, as real `followup` processes. The monitor's writes fail cleanly (exit 4, one line);
neither role can change the schema or read another schema.

PUBLIC's default rights on the test database and schema are revoked first, so the roles
work with the printed grants alone. Adding a command is one line in a list below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from followup_cli.service.context import Context
from followup_cli.settings import load_settings, normalize_database_url
from tests.conftest import PG_ADMIN_URL
from tests.helpers import add_followup

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FOLLOWUP = str(Path(sys.executable).parent / "followup")
KEY = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="  # base64 of 32 × "A"


class Run(NamedTuple):
    label: str
    argv: list[str]
    ok: tuple[int, ...] = (0,)


# The scheduler role runs every pass and write command. {files} are filled in.
SCHEDULER_RUNS = [
    Run("schedule post-event", ["schedule", "post-event", "--user-id", "u-new",
                                "--conversation-id", "c-new", "--event-date", "2026-01-10T18:00",
                                "--custom-message", "see you"]),
    Run("schedule reengagement", ["schedule", "reengagement", "--user-id", "u-re"]),
    Run("schedule import", ["schedule", "import", "{schedule_file}"]),
    Run("conversations import", ["conversations", "import", "{history_file}"]),
    Run("scan-inactive", ["scan-inactive"]),
    Run("run-due", ["run-due"]),
    Run("cancel", ["cancel", "cancel-me-00001"]),
    Run("cancel --user-id", ["cancel", "--user-id", "u-cancel-all"]),
    Run("retry", ["retry", "retry-me-000001"]),
    Run("retry --failed", ["retry", "--failed"], (0, 3)),
    Run("cleanup --yes", ["cleanup", "--yes", "--include-failed", "--include-cancelled",
                          "--conversations-older-than-days", "365"]),
    Run("forget-user --yes", ["forget-user", "u-forget", "--yes"]),
    Run("db reencrypt", ["db", "reencrypt"]),
]

# The monitor role only reads: health, stats, list, show, serve, and every dry run.
MONITOR_RUNS = [
    Run("health", ["health"], (0, 1)),
    Run("health --json", ["health", "--json"], (0, 1)),
    Run("stats", ["stats"]),
    Run("stats --format prometheus", ["stats", "--format", "prometheus"]),
    Run("list", ["list", "--limit", "100"]),
    Run("show", ["show", "watch-me-000001"]),
    Run("show --show-message", ["show", "watch-me-000001", "--show-message"]),
    Run("db current", ["db", "current"]),
    Run("templates list", ["templates", "list"]),
    Run("templates explain", ["templates", "explain", "--conversation-id", "c-new"]),
    Run("run-due --dry-run", ["run-due", "--dry-run"]),
    Run("scan-inactive --dry-run", ["scan-inactive", "--dry-run"]),
    Run("cleanup --dry-run", ["cleanup", "--dry-run", "--include-failed",
                              "--conversations-older-than-days", "365"]),
    Run("db reencrypt --dry-run", ["db", "reencrypt", "--dry-run"]),
]

# What the monitor must not be able to do: each is exit 4 with one clear line.
MONITOR_WRITES = [
    Run("schedule post-event", ["schedule", "post-event", "--user-id", "u-mon",
                                "--conversation-id", "c-mon", "--event-date", "2026-01-10T18:00"],
        (4,)),
    Run("cancel", ["cancel", "watch-me-000001"], (4,)),
    Run("run-due", ["run-due"], (4,)),
    Run("scan-inactive", ["scan-inactive"], (4,)),
    Run("cleanup --yes", ["cleanup", "--yes"], (4,)),
    Run("forget-user --yes", ["forget-user", "u-watch", "--yes"], (4,)),
    Run("db reencrypt", ["db", "reencrypt"], (4,)),
    Run("conversations import", ["conversations", "import", "{new_history_file}"], (4,)),
]


@dataclass
class Roles:
    db_url: str  # as the owner (postgres)
    scheduler: str
    monitor: str

    def url(self, role: str) -> str:
        parts = urlsplit(self.db_url)
        return f"postgresql://{role}@{parts.hostname}:{parts.port or 5432}{parts.path}"


@pytest.fixture
def roles(pg_url: str) -> Iterator[Roles]:
    suffix = uuid.uuid4().hex[:10]
    made = Roles(pg_url, f"fu_sched_{suffix}", f"fu_mon_{suffix}")
    admin = sa.create_engine(normalize_database_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    owner = sa.create_engine(normalize_database_url(pg_url), isolation_level="AUTOCOMMIT")
    database = urlsplit(pg_url).path.lstrip("/")
    with admin.connect() as conn:
        for role in (made.scheduler, made.monitor):
            conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
    with owner.connect() as conn:
        # Only what `db grants` gives counts: PUBLIC's defaults are taken away here.
        conn.exec_driver_sql(f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC')
        conn.exec_driver_sql("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        # A schema of another application, which neither role may read.
        conn.exec_driver_sql("CREATE SCHEMA other_app")
        conn.exec_driver_sql("CREATE TABLE other_app.secrets (x text)")
    try:
        yield made
    finally:
        with owner.connect() as conn:  # the grants keep a role alive: revoke them first
            conn.exec_driver_sql(f'DROP OWNED BY "{made.scheduler}", "{made.monitor}"')
        owner.dispose()
        with admin.connect() as conn:
            for role in (made.scheduler, made.monitor):
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        admin.dispose()


def followup(argv: list[str], url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FOLLOWUP_", "SCHEDULER_", "REENGAGEMENT_"))}
    env.update({"DATABASE_URL": url, "FOLLOWUP_SENDER": f"file:{tmp_path / 'sent.jsonl'}",
                "FOLLOWUP_ENCRYPTION_KEY": KEY})
    return subprocess.run([FOLLOWUP, *argv], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def seed(db_url: str, tmp_path: Path) -> dict[str, str]:
    """Rows for each command to act on, written as the owner; returns the files."""
    ctx = Context(load_settings({"DATABASE_URL": db_url}))
    now = datetime.now(UTC)
    old = now - timedelta(days=400)
    later = now + timedelta(days=30)
    add_followup(ctx, id="cancel-me-00001", user_id="u-cancel", scheduled_at=later)
    add_followup(ctx, id="cancel-all-0001", user_id="u-cancel-all", scheduled_at=later)
    add_followup(ctx, id="retry-me-000001", user_id="u-retry", status="failed",
                 last_attempt_at=now, retry_count=4, error_message="HTTP 500")
    add_followup(ctx, id="old-exec-000001", user_id="u-old", status="executed",
                 executed_at=old, created_at=old, scheduled_at=old)
    add_followup(ctx, id="forget-me-00001", user_id="u-forget", status="executed",
                 executed_at=now)
    add_followup(ctx, id="watch-me-000001", user_id="u-watch", scheduled_at=later)
    with ctx.db.transaction() as conn:  # an inactive user, and an old conversation
        for cid, user, at in (("c-inactive", "u-inactive", now - timedelta(days=60)),
                              ("c-ancient", "u-ancient", old)):
            conn.execute(sa.text(
                "INSERT INTO ai_conversations (id, user_id, created_at) VALUES (:c, :u, :t)"),
                {"c": cid, "u": user, "t": at})
            conn.execute(sa.text(
                "INSERT INTO ai_messages (id, conversation_id, user_id, role, content, "
                "emotion_score, created_at) VALUES (:m, :c, :u, 'user', 'hi', 0.5, :t)"),
                {"m": f"m-{cid}", "c": cid, "u": user, "t": at})
    ctx.close()
    schedule_file = tmp_path / "bookings.jsonl"
    schedule_file.write_text("\n".join(json.dumps(r) for r in (
        {"type": "post_event", "user_id": "u-imp1", "conversation_id": "c1",
         "event_date": "2026-01-11T18:00", "custom_message": "thanks"},
        {"type": "reengagement", "user_id": "u-imp2"})) + "\n", encoding="utf-8")
    history_file = tmp_path / "history.jsonl"
    history_file.write_text(json.dumps(
        {"conversation_id": "c-hist", "user_id": "u-hist", "role": "user", "content": "hello",
         "emotion_score": 0.9, "created_at": "2026-01-01T10:00:00Z"}) + "\n", encoding="utf-8")
    new_history_file = tmp_path / "more-history.jsonl"
    new_history_file.write_text(json.dumps(
        {"conversation_id": "c-hist2", "user_id": "u-hist2", "role": "user", "content": "hey",
         "created_at": "2026-01-02T10:00:00Z"}) + "\n", encoding="utf-8")
    return {"schedule_file": str(schedule_file), "history_file": str(history_file),
            "new_history_file": str(new_history_file)}


def run_all(runs: list[Run], url: str, files: dict[str, str], tmp_path: Path
            ) -> list[tuple[Run, subprocess.CompletedProcess[str]]]:
    done = []
    for run in runs:
        argv = [a.format(**files) for a in run.argv]
        done.append((run, followup(argv, url, tmp_path)))
    return done


def failures(done: list[tuple[Run, subprocess.CompletedProcess[str]]]) -> list[str]:
    return [f"{run.label}: exit {proc.returncode}, expected {run.ok}: {proc.stderr.strip()}"
            for run, proc in done if proc.returncode not in run.ok]


def test_each_role_does_its_job_and_nothing_more(roles: Roles, tmp_path: Path) -> None:
    granted = followup(["db", "grants", "--scheduler", roles.scheduler, "--monitor",
                        roles.monitor, "--apply", "--json"], roles.db_url, tmp_path)
    assert granted.returncode == 0, granted.stderr
    assert json.loads(granted.stdout)["applied"] is True
    assert granted.stderr == ""  # no warning: neither role is a superuser, owner or creator
    files = seed(roles.db_url, tmp_path)

    scheduler = run_all(SCHEDULER_RUNS, roles.url(roles.scheduler), files, tmp_path)
    assert not failures(scheduler), "\n".join(failures(scheduler))
    assert (tmp_path / "sent.jsonl").read_text(encoding="utf-8").count("\n") >= 2
    with sa.create_engine(normalize_database_url(roles.db_url)).connect() as conn:
        def one(sql: str) -> object:
            return conn.execute(sa.text(sql)).scalar()

        # The commands did their work, not merely exit 0.
        assert one("SELECT count(*) FROM scheduled_followups WHERE user_id = 'u-inactive' "
                   "AND trigger_type = 'reengagement'") == 1  # scan-inactive
        assert one("SELECT status FROM scheduled_followups WHERE id = 'cancel-me-00001'"
                   ) == "cancelled"
        assert one("SELECT status FROM scheduled_followups WHERE id = 'retry-me-000001'"
                   ) in ("pending", "executed")
        assert one("SELECT count(*) FROM scheduled_followups WHERE id = 'old-exec-000001' "
                   "OR user_id = 'u-forget'") == 0  # cleanup, forget-user
        assert one("SELECT count(*) FROM ai_conversations WHERE id = 'c-ancient'") == 0
        assert one("SELECT count(*) FROM ai_messages WHERE conversation_id = 'c-hist'") == 1
        assert one("SELECT count(*) FROM scheduled_followups WHERE message_content NOT LIKE "
                   "'fernet:%'") == 0  # db reencrypt

    monitor = run_all(MONITOR_RUNS, roles.url(roles.monitor), files, tmp_path)
    assert not failures(monitor), "\n".join(failures(monitor))

    # Something for each refused write to act on.
    ctx = Context(load_settings({"DATABASE_URL": roles.db_url}))
    old = datetime.now(UTC) - timedelta(days=400)
    add_followup(ctx, id="due-now-0000001", user_id="u-due")
    add_followup(ctx, id="old-exec-000002", user_id="u-old", status="executed",
                 executed_at=old, created_at=old, scheduled_at=old)
    with ctx.db.transaction() as conn:
        conn.execute(sa.text("INSERT INTO ai_messages (id, conversation_id, user_id, role, "
                             "content, created_at) VALUES ('m-old', 'c-inactive', "
                             "'u-lapsed', 'user', 'hi', :t)"), {"t": old})
    before = _snapshot(ctx)
    # The monitor's dry scan decides by the same rules as the scan (a private temporary
    # table), and writes nothing: u-lapsed would be re-engaged.
    dry = followup(["scan-inactive", "--dry-run", "--json"], roles.url(roles.monitor), tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["scheduled"] == 1
    refused = run_all(MONITOR_WRITES, roles.url(roles.monitor), files, tmp_path)
    assert not failures(refused), "\n".join(failures(refused))
    for run, proc in refused:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "lacks the privilege" in lines[0], (run.label, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout
    assert _snapshot(ctx) == before  # nothing was written
    ctx.close()


def _snapshot(ctx: Context) -> list[tuple[str, int]]:
    with ctx.db.transaction(readonly=True) as conn:
        return [(t, int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()))
                for t in ("scheduled_followups", "ai_conversations", "ai_messages",
                          "followup_runs")]


# Statements neither role may run: schema changes, and another schema's data.
FORBIDDEN = [
    "CREATE TABLE evil (x int)",
    "CREATE TABLE public.evil (x int)",
    "CREATE SCHEMA evil",
    "ALTER TABLE scheduled_followups ADD COLUMN evil int",
    "DROP TABLE ai_messages",
    "CREATE INDEX evil ON scheduled_followups (status)",
    "TRUNCATE followup_runs",
    "SELECT * FROM other_app.secrets",
]


@pytest.mark.parametrize("which", ["scheduler", "monitor"])
def test_neither_role_changes_the_schema_or_reads_another(roles: Roles, tmp_path: Path,
                                                          which: str) -> None:
    granted = followup(["db", "grants", "--scheduler", roles.scheduler, "--monitor",
                        roles.monitor, "--apply"], roles.db_url, tmp_path)
    assert granted.returncode == 0, granted.stderr
    role = getattr(roles, which)
    engine = sa.create_engine(normalize_database_url(roles.url(role)))
    allowed = []
    try:
        for statement in FORBIDDEN:
            with engine.connect() as conn:
                try:
                    conn.exec_driver_sql(statement)
                    allowed.append(statement)
                except sa.exc.ProgrammingError as error:
                    assert getattr(error.orig, "pgcode", None) == "42501", error
    finally:
        engine.dispose()
    assert not allowed, f"{which} role may run: {allowed}"


def test_grants_are_exact_and_rerunnable(roles: Roles, tmp_path: Path) -> None:
    owner = sa.create_engine(normalize_database_url(roles.db_url))
    with owner.begin() as conn:  # a privilege too many, granted by hand
        conn.exec_driver_sql(f'GRANT DELETE, TRUNCATE ON scheduled_followups TO "{roles.monitor}"')
    for _ in range(2):
        done = followup(["db", "grants", "--scheduler", roles.scheduler, "--monitor",
                         roles.monitor, "--apply"], roles.db_url, tmp_path)
        assert done.returncode == 0, done.stderr
    query = sa.text("SELECT has_table_privilege(:r, :t, :p)")
    with owner.connect() as conn:
        def can(role: str, table: str, privilege: str) -> bool:
            return bool(conn.execute(query, {"r": role, "t": table, "p": privilege}).scalar())

        assert not can(roles.monitor, "scheduled_followups", "DELETE")
        assert not can(roles.monitor, "scheduled_followups", "TRUNCATE")
        assert can(roles.monitor, "scheduled_followups", "SELECT")
        assert not can(roles.scheduler, "ai_messages", "UPDATE")
        assert not can(roles.scheduler, "alembic_version", "INSERT")
        assert can(roles.scheduler, "followup_user_guards", "UPDATE")
    owner.dispose()

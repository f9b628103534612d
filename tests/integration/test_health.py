"""Health and its four alerts, each fired and cleared with crafted rows, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from followup_cli.service.context import Context
from followup_cli.service.monitoring import check_health
from followup_cli.store import runs
from tests.conftest import FakeClock, MakeCtx
from tests.helpers import add_followup


def finish_pass(ctx: Context, at: datetime, kind: str = "run-due") -> None:
    with ctx.db.transaction() as conn:
        rid = uuid.uuid4().hex
        runs.start(conn, run_id=rid, kind=kind, host="h", pid=1,
                   started_at=at - timedelta(seconds=1))
        runs.finish(conn, run_id=rid, finished_at=at, status="ok", counts={})


def alerts(ctx: Context) -> dict[str, bool]:
    return {a.name: a.firing for a in check_health(ctx).alerts}


def test_healthy_with_a_fresh_idle_pass(ctx: Context) -> None:
    finish_pass(ctx, ctx.now() - timedelta(minutes=1))
    report = check_health(ctx)
    assert report.status == "healthy"
    assert report.ok
    assert report.scheduler_running is True
    assert report.pending_jobs == 0
    assert report.executed_today == 0
    assert not any(a.firing for a in report.alerts)
    assert report.to_json()["alerts"]["scheduler_down"]["value"] == 1.0


def test_scheduler_down_fires_when_no_pass_or_stale_pass(ctx: Context, clock: FakeClock
                                                         ) -> None:
    report = check_health(ctx)  # never ran
    assert (report.status, report.scheduler_running) == ("unhealthy", False)
    assert alerts(ctx)["scheduler_down"]
    finish_pass(ctx, clock.now - timedelta(minutes=6))
    assert alerts(ctx)["scheduler_down"]
    # a scan-inactive pass does not count as a delivery pass
    finish_pass(ctx, clock.now, kind="scan-inactive")
    assert alerts(ctx)["scheduler_down"]
    finish_pass(ctx, clock.now - timedelta(minutes=4, seconds=59))
    assert not alerts(ctx)["scheduler_down"]
    assert check_health(ctx).status == "healthy"
    clock.advance(seconds=2)  # now 5 min 1 s old
    assert check_health(ctx).status == "unhealthy"


def test_unfinished_pass_does_not_count(ctx: Context) -> None:
    with ctx.db.transaction() as conn:
        runs.start(conn, run_id="r1", kind="run-due", host="h", pid=1, started_at=ctx.now())
    assert check_health(ctx).scheduler_running is False


def test_failure_alert_counts_failures_of_the_last_hour(ctx: Context) -> None:
    now = ctx.now()
    finish_pass(ctx, now)
    old_created = now - timedelta(days=3)
    # 11 failed in the last hour, though created days ago: last_attempt_at is when it failed
    for _ in range(11):
        add_followup(ctx, status="failed", created_at=old_created,
                     last_attempt_at=now - timedelta(minutes=30), error_message="HTTP 500")
    report = check_health(ctx)
    by_name = {a.name: a for a in report.alerts}
    assert by_name["high_failure_rate"].value == 11
    assert by_name["high_failure_rate"].firing
    assert report.status == "degraded"
    assert not report.ok


def test_failure_alert_threshold_is_strictly_greater_and_configurable(make_ctx: MakeCtx
                                                                      ) -> None:
    ctx = make_ctx()
    now = ctx.now()
    finish_pass(ctx, now)
    for _ in range(10):
        add_followup(ctx, status="failed", last_attempt_at=now - timedelta(minutes=5))
    # an old failure and one without last_attempt_at created long ago do not count
    add_followup(ctx, status="failed", last_attempt_at=now - timedelta(hours=2))
    add_followup(ctx, status="failed", created_at=now - timedelta(hours=2))
    assert not alerts(ctx)["high_failure_rate"]  # 10 is not > 10
    assert alerts(make_ctx(FOLLOWUP_ALERT_FAILURES=9))["high_failure_rate"]


def test_delay_alert_fires_and_clears(ctx: Context, clock: FakeClock) -> None:
    now = clock.now
    finish_pass(ctx, now)
    add_followup(ctx, status="executed", scheduled_at=now - timedelta(minutes=50),
                 executed_at=now - timedelta(minutes=10))  # 40 min late
    add_followup(ctx, status="executed", scheduled_at=now - timedelta(minutes=25),
                 executed_at=now - timedelta(minutes=5))  # 20 min late
    report = check_health(ctx)
    delay = {a.name: a for a in report.alerts}["execution_delay"]
    assert delay.value == pytest.approx(30.0, abs=0.01)
    assert not delay.firing  # a mean of exactly 30 is not > 30
    add_followup(ctx, status="executed", scheduled_at=now - timedelta(minutes=60),
                 executed_at=now - timedelta(minutes=1))  # 59 min late
    delay = {a.name: a for a in check_health(ctx).alerts}["execution_delay"]
    assert delay.value == pytest.approx(39.667, abs=0.01)
    assert delay.firing
    assert check_health(ctx).status == "degraded"
    clock.advance(minutes=61)  # they leave the one-hour window
    finish_pass(ctx, clock.now)
    assert not alerts(ctx)["execution_delay"]
    assert check_health(ctx).status == "healthy"


def test_backlog_alert_counts_pending_more_than_an_hour_late(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(FOLLOWUP_ALERT_BACKLOG=2)
    now = ctx.now()
    finish_pass(ctx, now)
    for _ in range(3):
        add_followup(ctx, scheduled_at=now - timedelta(hours=2))
    add_followup(ctx, scheduled_at=now - timedelta(minutes=30))  # late, not an hour
    add_followup(ctx, status="processing", scheduled_at=now - timedelta(hours=2))
    report = check_health(ctx)
    backlog = {a.name: a for a in report.alerts}["pending_backlog"]
    assert (backlog.value, backlog.threshold, backlog.firing) == (3, 2, True)
    assert report.pending_jobs == 4
    assert report.status == "degraded"
    with ctx.db.transaction() as conn:
        conn.exec_driver_sql("UPDATE scheduled_followups SET status = 'executed' "
                             "WHERE status = 'pending'")
    assert not alerts(ctx)["pending_backlog"]


def test_disabled_is_reported_and_not_a_failure(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(SCHEDULER_ENABLED="false")
    finish_pass(ctx, ctx.now())
    report = check_health(ctx)
    assert report.status == "disabled"
    assert report.ok
    assert report.scheduler_running is False  # enabled AND a fresh pass
    assert not alerts(ctx)["scheduler_down"]


def test_executed_today_is_the_scheduler_zones_day(make_ctx: MakeCtx, clock: FakeClock
                                                   ) -> None:
    # 2026-11-20 12:00 UTC is 04:00 in Los Angeles: its day began at 08:00 UTC
    ctx = make_ctx(SCHEDULER_TIMEZONE="America/Los_Angeles")
    at = clock.now
    add_followup(ctx, status="executed", executed_at=datetime(2026, 11, 20, 8, 30, tzinfo=UTC),
                 scheduled_at=at - timedelta(hours=5))
    add_followup(ctx, status="executed", executed_at=datetime(2026, 11, 20, 7, 30, tzinfo=UTC),
                 scheduled_at=at - timedelta(hours=5))  # yesterday in LA, today in UTC
    assert check_health(ctx).executed_today == 1
    assert check_health(make_ctx()).executed_today == 2


def test_report_names_the_database_with_password_masked(ctx: Context) -> None:
    report = check_health(ctx)
    assert report.database == ctx.settings.database_display
    assert report.database.removeprefix("postgresql://").split("@")[-1] in (
        ctx.settings.database_url)
    assert not report.database.startswith("postgresql+")  # the plain form psql accepts


# --- the last scan-inactive and the missed daily scan -----------------------------------

def finish_run(ctx: Context, at: datetime, kind: str, status: str = "ok",
               counts: dict[str, int] | None = None) -> None:
    with ctx.db.transaction() as conn:
        rid = uuid.uuid4().hex
        runs.start(conn, run_id=rid, kind=kind, host="h", pid=1,
                   started_at=at - timedelta(seconds=1))
        runs.finish(conn, run_id=rid, finished_at=at, status=status, counts=counts or {})


def test_reports_the_last_scan_inactive(ctx: Context, clock: FakeClock) -> None:
    assert check_health(ctx).to_json()["last_scan_inactive"] is None
    counts = {"candidates": 40, "scheduled": 12, "skipped_cap": 1, "skipped_limit": 0,
              "skipped_conflict": 0}
    finish_run(ctx, clock.now - timedelta(hours=26), "scan-inactive", counts={"scheduled": 1})
    finish_run(ctx, clock.now - timedelta(hours=3), "scan-inactive", counts=counts)
    finish_run(ctx, clock.now - timedelta(minutes=1), "run-due")  # another kind
    doc = check_health(ctx).to_json()["last_scan_inactive"]
    assert doc == {"finished_at": (clock.now - timedelta(hours=3)).isoformat(),
                   "status": "ok", "counts": counts}


def test_missed_daily_scan_fires_after_25_hours(make_ctx: MakeCtx, clock: FakeClock) -> None:
    ctx = make_ctx()
    finish_run(ctx, clock.now - timedelta(days=10), "run-due")
    finish_run(ctx, clock.now, "run-due")
    finish_run(ctx, clock.now - timedelta(hours=24, minutes=59), "scan-inactive")
    report = check_health(ctx)
    scan = report.alert("missed_daily_scan")
    assert scan is not None
    assert scan.value == pytest.approx(24.983, abs=0.001)
    assert (scan.threshold, scan.unit, scan.firing) == (25, "hours", False)
    assert report.status == "healthy"
    clock.advance(minutes=2)  # 25 h 1 min
    finish_run(ctx, clock.now, "run-due")
    report = check_health(ctx)
    assert report.alert("missed_daily_scan").firing  # type: ignore[union-attr]
    assert (report.status, report.ok) == ("degraded", False)
    # a scan that failed is shown but does not reset the clock
    finish_run(ctx, clock.now, "scan-inactive", status="failed")
    report = check_health(ctx)
    assert report.last_scan_inactive is not None
    assert report.last_scan_inactive.status == "failed"
    assert report.alert("missed_daily_scan").firing  # type: ignore[union-attr]
    finish_run(ctx, clock.now, "scan-inactive")
    assert check_health(ctx).status == "healthy"
    # the threshold is a setting (a weekday-only scan needs 73 hours over a weekend)
    clock.advance(hours=30)
    finish_run(ctx, clock.now, "run-due")
    assert check_health(ctx).alert("missed_daily_scan").firing  # type: ignore[union-attr]
    weekly = check_health(make_ctx(FOLLOWUP_ALERT_SCAN_HOURS="73"))
    assert not weekly.alert("missed_daily_scan").firing  # type: ignore[union-attr]
    # and it is silent while the scheduler is disabled on purpose
    off = check_health(make_ctx(SCHEDULER_ENABLED="false"))
    assert not off.alert("missed_daily_scan").firing  # type: ignore[union-attr]


def test_fresh_install_counts_the_scan_age_from_the_first_run_due(ctx: Context,
                                                                  clock: FakeClock) -> None:
    # nothing ever ran: nothing to measure from (scheduler_down fires instead)
    scan = check_health(ctx).alert("missed_daily_scan")
    assert scan is not None and scan.value is None and not scan.firing
    # delivering for an hour, never scanned: a grace period, not an alarm
    finish_run(ctx, clock.now - timedelta(hours=1), "run-due")
    finish_run(ctx, clock.now, "run-due")
    report = check_health(ctx)
    assert report.status == "healthy"
    scan = report.alert("missed_daily_scan")
    assert scan is not None and scan.value == 1.0 and "no scan-inactive" in scan.description
    # delivering for 26 hours and the daily scan was never set up: alarm
    clock.advance(hours=25)
    finish_run(ctx, clock.now, "run-due")
    report = check_health(ctx)
    assert report.alert("missed_daily_scan").firing  # type: ignore[union-attr]
    assert report.status == "degraded"


def test_an_abandoned_run_due_record_is_not_a_pass(ctx: Context, clock: FakeClock) -> None:
    finish_run(ctx, clock.now - timedelta(minutes=10), "run-due")
    finish_run(ctx, clock.now, "run-due", status="abandoned")  # closed for a dead pass
    report = check_health(ctx)
    assert report.scheduler_running is False
    assert report.last_run_due_at == clock.now - timedelta(minutes=10)


def test_a_server_that_does_not_answer_costs_one_connect_timeout() -> None:
    """A host that accepts connections and never answers (a hung server, a black-holed
    route): `health` must say unhealthy after one connect timeout. It connected three
    times (the clock offset, the check, the clock again for the error report) and four
    through the raw pool's retry, so a monitor with a 10 s timeout saw a timeout, not the
    unhealthy document."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import threading
    from pathlib import Path

    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)  # held open, never answered

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FOLLOWUP_", "PG")) and k != "DATABASE_URL"}
    env["DATABASE_URL"] = f"postgresql://nobody@127.0.0.1:{port}/x?connect_timeout=2"
    try:
        done = subprocess.run([str(Path(sys.executable).parent / "followup"), "health",
                               "--json"], env=env, capture_output=True, text=True,
                              timeout=60)
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    assert done.returncode == 4, done.stderr
    assert json.loads(done.stdout)["status"] == "unhealthy"
    assert len(accepted) == 1

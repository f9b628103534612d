"""The Prometheus exposition (`stats --format prometheus`, `serve`'s /metrics) and the
alerting rules shipped for it, on both databases and, where installed, through promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from followup_cli.errors import DatabaseError
from followup_cli.service.context import Context
from followup_cli.service.metrics import (
    ALERT_SERIES,
    collect_metrics,
    exposition,
    unavailable_exposition,
)
from followup_cli.service.monitoring import check_health
from followup_cli.store import runs
from tests.conftest import FakeClock, MakeCtx
from tests.helpers import add_followup

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package `prometheus`)")


def finish_pass(ctx: Context, at: datetime, kind: str = "run-due", status: str = "ok",
                counts: dict[str, Any] | None = None) -> None:
    with ctx.db.transaction() as conn:
        rid = uuid.uuid4().hex
        runs.start(conn, run_id=rid, kind=kind, host="h", pid=1,
                   started_at=at - timedelta(seconds=1))
        runs.finish(conn, run_id=rid, finished_at=at, status=status, counts=counts or {})


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict[str, Any], name: str, **labels: str) -> float | None:
    for sample in fams[name].samples:
        if sample.labels == labels:
            return float(sample.value)
    return None


def seed(ctx: Context, now: datetime) -> None:
    finish_pass(ctx, now - timedelta(days=3))  # the first run-due pass
    finish_pass(ctx, now - timedelta(minutes=2))
    finish_pass(ctx, now - timedelta(hours=30), kind="scan-inactive",
                counts={"candidates": 3, "scheduled": 2})
    for _ in range(12):  # 12 failures in the last hour: over the threshold of 10
        add_followup(ctx, status="failed", last_attempt_at=now - timedelta(minutes=5),
                     template_id="post_event_low_emotion")
    add_followup(ctx, status="executed", scheduled_at=now - timedelta(minutes=40),
                 executed_at=now - timedelta(minutes=10))  # 30 min late: not over 30
    add_followup(ctx, scheduled_at=now - timedelta(hours=2))  # pending, overdue


def test_figures_and_alerts_one_name_each(ctx: Context, clock: FakeClock) -> None:
    seed(ctx, clock.now)
    text = exposition(collect_metrics(ctx))
    fams = families(text)
    health = check_health(ctx)
    # the figures health shows carry health's names
    assert value(fams, "followup_pending_jobs") == health.pending_jobs == 1
    assert value(fams, "followup_executed_today") == health.executed_today == 1
    assert value(fams, "followup_failed_jobs") == 12
    assert value(fams, "followup_scheduler_running") == 1
    assert value(fams, "followup_health_status", status="degraded") == 1
    assert sum(s.value for s in fams["followup_health_status"].samples) == 1
    # every health alert: value and threshold in base units, and its firing state
    for alert in health.alerts:
        series = ALERT_SERIES[alert.name]
        scale = series.seconds_per_unit or 1
        assert value(fams, "followup_alert_firing", alert=alert.name) == int(alert.firing)
        assert value(fams, series.threshold) == pytest.approx(alert.threshold * scale)
        assert alert.value is not None
        assert value(fams, series.value) == pytest.approx(alert.value * scale, abs=0.01)
    firing = {s.labels["alert"] for s in fams["followup_alert_firing"].samples if s.value}
    assert firing == {"high_failure_rate", "missed_daily_scan"}
    assert value(fams, "followup_failed_last_hour") == 12
    assert value(fams, "followup_run_due_age_seconds") == pytest.approx(120)
    assert value(fams, "followup_execution_delay_last_hour_seconds") == pytest.approx(1800)
    assert value(fams, "followup_scan_inactive_age_seconds") == pytest.approx(30 * 3600)
    assert value(fams, "followup_scan_inactive_age_threshold_seconds") == 25 * 3600
    assert value(fams, "followup_last_run_due_timestamp_seconds") == pytest.approx(
        (clock.now - timedelta(minutes=2)).timestamp())
    assert value(fams, "followup_last_scan_inactive_timestamp_seconds") == pytest.approx(
        (clock.now - timedelta(hours=30)).timestamp())
    assert value(fams, "followup_template_failed",
                 template_id="post_event_low_emotion") == 12


def test_idiomatic_names_and_no_series_per_date(ctx: Context, clock: FakeClock) -> None:
    seed(ctx, clock.now)
    text = exposition(collect_metrics(ctx))
    fams = families(text)
    # nothing here only grows (cleanup, retry and forget-user lower every count): gauges,
    # so no _total; times in seconds
    assert {f.type for f in fams.values()} == {"gauge"}
    assert not [n for n in fams if n.endswith("_total")]
    assert not [n for n in fams if re.search(r"_(minutes|hours|days|milliseconds)$", n)]
    labels = {k for f in fams.values() for s in f.samples for k in s.labels}
    assert labels == {"status", "alert", "template_id"}
    assert "date" not in text and "2026-" not in text


def test_before_any_pass_the_ages_have_no_sample(ctx: Context) -> None:
    fams = families(exposition(collect_metrics(ctx)))
    for name in ("followup_run_due_age_seconds", "followup_scan_inactive_age_seconds",
                 "followup_last_run_due_timestamp_seconds",
                 "followup_last_scan_inactive_timestamp_seconds",
                 "followup_execution_delay_last_hour_seconds"):
        assert fams[name].samples == [], name
    assert value(fams, "followup_health_status", status="unhealthy") == 1


def test_database_down_is_a_gauge_not_a_failed_scrape(make_ctx: MakeCtx, clock: FakeClock
                                                      ) -> None:
    ctx = make_ctx(SCHEDULER_ENABLED="true")
    fams = families(unavailable_exposition(ctx.settings, clock.now,
                                           DatabaseError("cannot use the database")))
    assert value(fams, "followup_database_up") == 0
    assert value(fams, "followup_health_status", status="unhealthy") == 1
    assert value(fams, "followup_generated_timestamp_seconds") == clock.now.timestamp()
    assert value(families(exposition(collect_metrics(ctx))), "followup_database_up") == 1


def test_rules_use_only_series_followup_exports(ctx: Context, clock: FakeClock) -> None:
    seed(ctx, clock.now)
    exported = set(families(exposition(collect_metrics(ctx))))
    rules = (RULES_DIR / "followup-rules.yml").read_text(encoding="utf-8")
    expressions = "\n".join(re.findall(r"expr: (.+)", rules))
    used = set(re.findall(r"\bfollowup_[a-z_]+", expressions))
    assert used and used <= exported, used - exported
    named = set(re.findall(r"- alert: (\w+)", rules))
    assert {"FollowupHighFailureRate", "FollowupSchedulerDown", "FollowupExecutionDelay",
            "FollowupPendingBacklog", "FollowupDailyScanMissed",
            "FollowupMetricsStale"} <= named


@needs_promtool
def test_promtool_check_metrics_accepts_the_exposition(ctx: Context, clock: FakeClock) -> None:
    seed(ctx, clock.now)
    assert PROMTOOL is not None
    for text in (exposition(collect_metrics(ctx)),
                 unavailable_exposition(ctx.settings, clock.now, DatabaseError("down"))):
        done = subprocess.run([PROMTOOL, "check", "metrics"], input=text, text=True,
                              capture_output=True, timeout=60, check=False)
        assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


@needs_promtool
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    assert PROMTOOL is not None
    check = subprocess.run([PROMTOOL, "check", "rules", "followup-rules.yml"], cwd=RULES_DIR,
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 9 rules found" in check.stdout
    # followup-rules.test.yml: each alert fires above its threshold, not at it, not while
    # disabled; a database outage is not "scheduler down"; stale and absent metrics alert
    tested = subprocess.run([PROMTOOL, "test", "rules", "followup-rules.test.yml"],
                            cwd=RULES_DIR, capture_output=True, text=True, timeout=60,
                            check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr

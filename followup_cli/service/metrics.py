"""The Prometheus exposition of `health` and `stats`: what `stats --format prometheus` prints
and what `serve` answers on /metrics, the same text from the same figures.

Named the way node_exporter names its own: base units (`_seconds`, Unix-time
`_timestamp_seconds`), one series per figure and label value, never a series per date
(Prometheus keeps the history). There is no `_total` counter: every figure is read from
tables that `cleanup`, `retry` and `forget-user` lower, and a counter that drops makes
rate() invent a spike, so each one is a gauge. Each health alert exports its value, its
threshold and whether it fires, so alerting rules compare the two and follow the
FOLLOWUP_ALERT_* settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from followup_cli.service.monitoring import (
    STATUSES,
    UNHEALTHY,
    HealthReport,
    StatsResult,
    read_health,
    read_stats,
)

if TYPE_CHECKING:
    from followup_cli.errors import FollowupError
    from followup_cli.service.context import Context
    from followup_cli.settings import Settings

# What /metrics answers with: the text format Prometheus 2.x scrapes (prometheus_client's
# own CONTENT_TYPE_LATEST has moved on to a newer version string).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class AlertSeries:
    value: str
    threshold: str
    seconds_per_unit: float | None  # health's unit in seconds; None: a count
    help: str


# health alert -> its Prometheus series (docs/monitoring.md has the same table)
ALERT_SERIES: dict[str, AlertSeries] = {
    "high_failure_rate": AlertSeries(
        "followup_failed_last_hour", "followup_failed_last_hour_threshold", None,
        "Follow-ups that failed in the last hour (by their last attempt)."),
    "scheduler_down": AlertSeries(
        "followup_run_due_age_seconds", "followup_run_due_age_threshold_seconds", 60,
        "Seconds since the last run-due pass finished, idle or not."),
    "execution_delay": AlertSeries(
        "followup_execution_delay_last_hour_seconds",
        "followup_execution_delay_threshold_seconds", 60,
        "Mean executed_at - scheduled_at of the follow-ups executed in the last hour."),
    "pending_backlog": AlertSeries(
        "followup_overdue_jobs", "followup_overdue_jobs_threshold", None,
        "Pending follow-ups scheduled more than an hour ago."),
    "missed_daily_scan": AlertSeries(
        "followup_scan_inactive_age_seconds",
        "followup_scan_inactive_age_threshold_seconds", 3600,
        "Seconds since the last successful scan-inactive pass (before the first one: "
        "since the first run-due pass)."),
}


@dataclass
class Snapshot:
    health: HealthReport
    stats: StatsResult


def collect_metrics(ctx: Context, days: int = 7) -> Snapshot:
    """Health and stats read in one short read-only transaction (the clock read on it)."""
    with ctx.db.transaction(readonly=True) as conn:
        ctx.db.learn_clock(conn)
        now = ctx.now()
        return Snapshot(read_health(conn, ctx.settings, now),
                        read_stats(conn, ctx.settings, now, days))


def _in_seconds(value: float | None, seconds_per_unit: float | None) -> float | None:
    if value is None or seconds_per_unit is None:
        return value
    return value * seconds_per_unit


def exposition(snapshot: Snapshot) -> str:
    """The Prometheus text of a snapshot, HELP and TYPE lines written by prometheus_client."""
    health, stats = snapshot.health, snapshot.stats
    families: list[Any] = [
        _gauge("followup_database_up", "1 when the database could be read.", 1),
        *_health_families(health),
        _gauge("followup_failed_jobs", "Follow-ups in status failed.", stats.failed_jobs),
    ]
    window = f"created in the last {stats.days} days"
    for figure, doc in (("used", "Follow-ups"), ("executed", "Executed follow-ups"),
                        ("failed", "Failed follow-ups")):
        families.append(_gauge(
            f"followup_template_{figure}", f"{doc} per template, {window}.",
            labelled=[((t.template_id or "",), getattr(t, figure)) for t in stats.templates],
            labels=("template_id",)))
    families.append(_generated(health.checked_at))
    return _render(families)


def unavailable_exposition(settings: Settings, now: datetime, error: FollowupError) -> str:
    """What /metrics answers while the database cannot be read: database_up 0 (the
    exporters' `pg_up 0` idiom) and an unhealthy status, so rules see the outage rather
    than a failed scrape."""
    del error  # its text is in serve's log and in /api/scheduler/health
    return _render([
        _gauge("followup_database_up", "1 when the database could be read.", 0),
        _status_family(UNHEALTHY),
        _gauge("followup_scheduler_enabled", "1 unless SCHEDULER_ENABLED=false.",
               int(settings.enabled)),
        _generated(now),
    ])


def _health_families(health: HealthReport) -> Iterable[Any]:
    yield _status_family(health.status)
    yield _gauge("followup_scheduler_enabled", "1 unless SCHEDULER_ENABLED=false.",
                 int(health.enabled))
    yield _gauge("followup_scheduler_running", "1 when enabled and a run-due pass "
                 "finished within FOLLOWUP_ALERT_STALE_MINUTES.",
                 int(health.scheduler_running))
    yield _gauge("followup_pending_jobs", "Follow-ups waiting to be delivered.",
                 health.pending_jobs)
    yield _gauge("followup_executed_today", "Follow-ups executed today (the scheduler "
                 "zone's day).", health.executed_today)
    yield _gauge("followup_alert_firing", "1 while the health alert fires.",
                 labelled=[((a.name,), int(a.firing)) for a in health.alerts],
                 labels=("alert",))
    for alert in health.alerts:
        series = ALERT_SERIES[alert.name]
        yield _gauge(series.value, series.help,
                     _in_seconds(alert.value, series.seconds_per_unit))
        yield _gauge(series.threshold, f"The {alert.name} alert fires above this.",
                     _in_seconds(alert.threshold, series.seconds_per_unit))
    yield _gauge("followup_last_run_due_timestamp_seconds",
                 "When the last run-due pass finished, Unix time.",
                 _timestamp(health.last_run_due_at))
    scan = health.last_scan_inactive
    yield _gauge("followup_last_scan_inactive_timestamp_seconds",
                 "When the last scan-inactive pass finished (whatever its status), Unix "
                 "time.", None if scan is None else scan.finished_at.timestamp())


def _status_family(status: str) -> Any:
    return _gauge("followup_health_status", "1 for the current health status.",
                  labelled=[((s,), int(s == status)) for s in STATUSES], labels=("status",))


def _generated(at: datetime) -> Any:
    return _gauge("followup_generated_timestamp_seconds",
                  "When these figures were read, Unix time.", at.timestamp())


def _timestamp(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def _gauge(name: str, doc: str, value: float | None = None, *,
           labelled: list[tuple[tuple[str, ...], float]] | None = None,
           labels: tuple[str, ...] = ()) -> Any:
    """A gauge family; a figure that does not exist yet (no pass ever) has no sample."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, doc, labels=list(labels) if labels else None)
    if value is not None:
        family.add_metric([], value)
    for label_values, sample in labelled or []:
        family.add_metric(list(label_values), sample)
    return family


def _render(families: list[Any]) -> str:
    # Imported here: only the commands that expose metrics pay for prometheus_client.
    from prometheus_client import CollectorRegistry, generate_latest

    class Fixed:
        def collect(self) -> list[Any]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    return generate_latest(registry).decode("utf-8")

"""`health` and `stats`: the guide's health check, its four alerts and its key metrics.

Status rules (health):
- `disabled`: SCHEDULER_ENABLED=false, whatever the alerts say (deliberate: exit 0).
- `unhealthy`: the scheduler is down (no run-due pass finished within the stale window), or
  the database cannot be used: nothing is being delivered.
- `degraded`: deliveries happen but an alert fires (failures, delay or overdue backlog).
- `healthy`: no alert fires.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from followup_cli.db.schema import FAILED, PENDING
from followup_cli.errors import FollowupError, InputError
from followup_cli.redact import sender_display
from followup_cli.service.context import Context
from followup_cli.settings import Settings
from followup_cli.store import monitoring, runs
from followup_cli.timeutil import iso, local_day_bounds

log = logging.getLogger("followup.monitoring")

HEALTHY, DEGRADED, UNHEALTHY, DISABLED = "healthy", "degraded", "unhealthy", "disabled"
RUN_DUE = "run-due"
WINDOW = timedelta(hours=1)  # the guide's "last hour" for failures, delay and backlog


@dataclass(frozen=True)
class Alert:
    name: str
    description: str
    value: float | None
    threshold: float
    unit: str
    firing: bool
    severity: str  # the status it causes when firing: degraded or unhealthy

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "threshold": self.threshold, "unit": self.unit,
                "firing": self.firing, "severity": self.severity,
                "description": self.description}


@dataclass
class HealthReport:
    status: str
    scheduler_running: bool
    pending_jobs: int | None
    executed_today: int | None
    enabled: bool
    database: str
    timezone: str
    checked_at: datetime
    last_run_due_at: datetime | None = None
    alerts: list[Alert] = field(default_factory=list)
    error: str | None = None
    sender: str | None = None  # FOLLOWUP_SENDER as redact.sender_display shows it

    @property
    def ok(self) -> bool:
        return self.status in (HEALTHY, DISABLED)

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.firing]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "scheduler_running": self.scheduler_running,
            "pending_jobs": self.pending_jobs,
            "executed_today": self.executed_today,
            "enabled": self.enabled,
            "database": self.database,
            "sender": self.sender,
            "timezone": self.timezone,
            "checked_at": iso(self.checked_at),
            "last_run_due_at": iso(self.last_run_due_at),
            "alerts": {a.name: a.to_json() for a in self.alerts},
            "error": self.error,
        }


def verdict(enabled: bool, alerts: list[Alert]) -> str:
    if not enabled:
        return DISABLED
    severities = {a.severity for a in alerts if a.firing}
    if UNHEALTHY in severities:
        return UNHEALTHY
    return DEGRADED if severities else HEALTHY


def check_health(ctx: Context) -> HealthReport:
    """The guide's health check and its four alerts, in one read-only transaction."""
    settings = ctx.settings
    limits = settings.alerts
    now = ctx.now()
    day_start, day_end = local_day_bounds(now, settings.timezone)
    with ctx.db.transaction(readonly=True) as conn:
        pending = monitoring.count_by_status(conn, PENDING)
        executed_today = monitoring.count_executed_between(conn, day_start, day_end)
        failures = monitoring.count_failed_since(conn, now - WINDOW)
        executed_recent, delay_s = monitoring.delay_since(conn, now - WINDOW)
        overdue = monitoring.count_overdue(conn, now - WINDOW)
        last = runs.last_finished(conn, RUN_DUE)
    last_at: datetime | None = None if last is None else last["finished_at"]
    age_min = None if last_at is None else max(0.0, (now - last_at).total_seconds() / 60)
    fresh = age_min is not None and age_min <= limits.stale_minutes
    running = settings.enabled and fresh
    delay_min = None if delay_s is None else round(delay_s / 60, 3)
    alerts = [
        Alert("high_failure_rate", "follow-ups that failed in the last hour",
              failures, limits.failures_per_hour, "failures",
              failures > limits.failures_per_hour, DEGRADED),
        Alert("scheduler_down", "minutes since the last finished run-due pass",
              None if age_min is None else round(age_min, 3), limits.stale_minutes, "minutes",
              settings.enabled and not fresh, UNHEALTHY),
        Alert("execution_delay",
              f"mean minutes from scheduled to executed, {executed_recent} executed in the "
              "last hour", delay_min, limits.delay_minutes, "minutes",
              delay_min is not None and delay_min > limits.delay_minutes, DEGRADED),
        Alert("pending_backlog", "pending follow-ups scheduled more than an hour ago",
              overdue, limits.overdue_backlog, "follow-ups",
              overdue > limits.overdue_backlog, DEGRADED),
    ]
    report = HealthReport(
        status=verdict(settings.enabled, alerts), scheduler_running=running,
        pending_jobs=pending, executed_today=executed_today, enabled=settings.enabled,
        database=settings.database_display, timezone=settings.timezone_name,
        checked_at=now, last_run_due_at=last_at, alerts=alerts,
        sender=sender_display(settings.sender))
    log.info("health %s: pending=%d executed_today=%d firing=%s", report.status, pending,
             executed_today, ",".join(a.name for a in report.firing) or "-")
    return report


def unreachable_report(settings: Settings, now: datetime, error: FollowupError) -> HealthReport:
    """What health says when the database itself cannot be used."""
    return HealthReport(
        status=UNHEALTHY, scheduler_running=False, pending_jobs=None, executed_today=None,
        enabled=settings.enabled, database=settings.database_display,
        timezone=settings.timezone_name, checked_at=now, error=str(error),
        sender=sender_display(settings.sender))


# --- stats ------------------------------------------------------------------------------

RECENT_FAILURES = 10
RATE_DAYS = 7
MAX_DAYS = 3660


@dataclass(frozen=True)
class DayRate:
    date: date
    executed: int
    avg_delay_seconds: float | None

    def to_json(self) -> dict[str, Any]:
        return {"date": self.date.isoformat(), "executed": self.executed,
                "avg_delay_seconds": _round(self.avg_delay_seconds)}


@dataclass(frozen=True)
class TemplateStats:
    template_id: str | None
    used: int
    executed: int
    failed: int

    def to_json(self) -> dict[str, Any]:
        return {"template_id": self.template_id, "used": self.used,
                "executed": self.executed, "failed": self.failed}


@dataclass
class StatsResult:
    generated_at: datetime
    timezone: str
    days: int
    pending: int
    executed_today: int
    failed_total: int
    recent_failures: list[dict[str, Any]]
    execution_rate: list[DayRate]
    templates: list[TemplateStats]
    last_run_due_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_at": iso(self.generated_at),
            "timezone": self.timezone,
            "days": self.days,
            "pending": self.pending,
            "executed_today": self.executed_today,
            "failed_total": self.failed_total,
            "recent_failures": [
                {"id": f["id"], "user_id": f["user_id"], "error_message": f["error_message"],
                 "retry_count": f["retry_count"], "created_at": iso(f["created_at"]),
                 "last_attempt_at": iso(f["last_attempt_at"]),
                 "template_id": f["template_id"]}
                for f in self.recent_failures],
            "execution_rate": [d.to_json() for d in self.execution_rate],
            "template_distribution": [{"template_id": t.template_id, "count": t.used}
                                      for t in self.templates],
            "template_performance": [t.to_json() for t in self.templates],
            "last_run_due_at": iso(self.last_run_due_at),
        }

    def to_prometheus(self) -> str:
        """Prometheus text exposition (for the node_exporter textfile collector)."""
        return prometheus_text(self)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def local_days(now: datetime, zone: ZoneInfo, count: int) -> list[tuple[date, datetime, datetime]]:
    """The last `count` local days of `zone` ending today, newest first, with their UTC
    bounds (a DST day is 23 or 25 hours long)."""
    today = now.astimezone(zone).date()
    out = []
    for back in range(count):
        day = today - timedelta(days=back)
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
        out.append((day, *local_day_bounds(start, zone)))
    return out


def collect_stats(ctx: Context, days: int = 7) -> StatsResult:
    """The guide's key metrics 1–5 and template performance over the last `days` days."""
    if not 1 <= days <= MAX_DAYS:
        raise InputError(f"--days: {days} must be between 1 and {MAX_DAYS}")
    now = ctx.now()
    zone = ctx.settings.timezone
    calendar = local_days(now, zone, RATE_DAYS)
    with ctx.db.transaction(readonly=True) as conn:
        pending = monitoring.count_by_status(conn, PENDING)
        failed_total = monitoring.count_by_status(conn, FAILED)
        per_day = monitoring.executed_per_bucket(conn, [(s, e) for _, s, e in calendar])
        failures = monitoring.recent_failures(conn, RECENT_FAILURES)
        templates = monitoring.template_counts(conn, now - timedelta(days=days))
        last = runs.last_finished(conn, RUN_DUE)
    rate = []
    for i, (day, _, _) in enumerate(calendar):
        agg = per_day.get(i)
        rate.append(DayRate(day, agg.executed if agg else 0,
                            agg.avg_delay_seconds if agg else None))
    return StatsResult(
        generated_at=now, timezone=ctx.settings.timezone_name, days=days, pending=pending,
        executed_today=rate[0].executed, failed_total=failed_total, recent_failures=failures,
        execution_rate=rate, templates=[TemplateStats(*t) for t in templates],
        last_run_due_at=None if last is None else last["finished_at"])


def prometheus_text(stats: StatsResult) -> str:
    """The stats as gauges, HELP and TYPE lines written by prometheus_client itself."""
    # Imported here: only --format prometheus pays for it.
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    def gauge(name: str, doc: str, value: float | None = None,
              labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=list(labels) if labels else None)
        if value is not None:
            family.add_metric([], value)
        return family

    class StatsCollector:
        def collect(self) -> list[GaugeMetricFamily]:
            rate = gauge("followup_executed", "Follow-ups executed per local day "
                         "(scheduler zone).", labels=("date",))
            delay = gauge("followup_execution_delay_seconds", "Mean executed_at - "
                          "scheduled_at per local day, seconds.", labels=("date",))
            for day in stats.execution_rate:
                rate.add_metric([day.date.isoformat()], day.executed)
                if day.avg_delay_seconds is not None:
                    delay.add_metric([day.date.isoformat()], day.avg_delay_seconds)
            window = f"created in the last {stats.days} days"
            used = gauge("followup_template_used", f"Follow-ups per template, {window}.",
                         labels=("template_id",))
            executed = gauge("followup_template_executed",
                             f"Executed follow-ups per template, {window}.",
                             labels=("template_id",))
            failed = gauge("followup_template_failed",
                           f"Failed follow-ups per template, {window}.",
                           labels=("template_id",))
            for t in stats.templates:
                label = [t.template_id or ""]
                used.add_metric(label, t.used)
                executed.add_metric(label, t.executed)
                failed.add_metric(label, t.failed)
            families = [
                gauge("followup_pending_jobs", "Follow-ups waiting to be delivered.",
                      stats.pending),
                gauge("followup_executed_today", "Follow-ups executed today (scheduler "
                      "zone).", stats.executed_today),
                gauge("followup_failed_jobs", "Follow-ups in status failed.",
                      stats.failed_total),
                rate, delay, used, executed, failed,
                gauge("followup_stats_generated_timestamp_seconds",
                      "When these figures were computed, Unix time.",
                      stats.generated_at.timestamp()),
            ]
            if stats.last_run_due_at is not None:
                families.append(gauge(
                    "followup_last_run_due_timestamp_seconds",
                    "When the last run-due pass finished, Unix time.",
                    stats.last_run_due_at.timestamp()))
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector())
    return str(generate_latest(registry).decode("utf-8"))

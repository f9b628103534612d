"""`health` and `stats`: the guide's health check, its four alerts (and the missed daily
scan), and its key metrics. `serve` and the Prometheus exposition read the same figures.

Status rules (health):
- `disabled`: SCHEDULER_ENABLED=false, whatever the alerts say (deliberate: exit 0).
- `unhealthy`: the scheduler is down (no run-due pass finished within the stale window), or
  the database cannot be used: nothing is being delivered.
- `degraded`: deliveries happen but an alert fires (failures, delay, overdue backlog, or
  no successful scan-inactive for FOLLOWUP_ALERT_SCAN_HOURS).
- `healthy`: no alert fires.

A fresh install that never scanned is not alarmed at once: the scan's age counts from the
first finished run-due pass (when the scheduler started working), so an install whose
daily scan was never set up alerts one threshold after it began delivering.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from followup_cli.db.states import FAILED, PENDING
from followup_cli.errors import FollowupError, InputError
from followup_cli.redact import sender_display
from followup_cli.service.context import Context
from followup_cli.settings import Settings
from followup_cli.store import health
from followup_cli.timeutil import iso, local_day_bounds

if TYPE_CHECKING:
    import sqlalchemy as sa

log = logging.getLogger("followup.monitoring")

HEALTHY, DEGRADED, UNHEALTHY, DISABLED = "healthy", "degraded", "unhealthy", "disabled"
STATUSES = (HEALTHY, DEGRADED, UNHEALTHY, DISABLED)
RUN_DUE, SCAN_INACTIVE = "run-due", "scan-inactive"
# A record closed for a pass that died is no evidence that passes run.
DEAD_RUN = ("abandoned",)
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


@dataclass(frozen=True)
class LastRun:
    """The newest finished record of a pass kind, as `health` shows it."""

    finished_at: datetime
    status: str
    counts: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"finished_at": iso(self.finished_at), "status": self.status,
                "counts": self.counts}


def error_json(error: FollowupError) -> dict[str, Any]:
    """The one error shape of every command: {"message", "exit_code"}."""
    return {"message": str(error), "exit_code": int(error.exit_code)}


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
    last_scan_inactive: LastRun | None = None
    alerts: list[Alert] = field(default_factory=list)
    error: FollowupError | None = None
    sender: str | None = None  # FOLLOWUP_SENDER as redact.sender_display shows it

    @property
    def ok(self) -> bool:
        return self.status in (HEALTHY, DISABLED)

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.firing]

    def alert(self, name: str) -> Alert | None:
        return next((a for a in self.alerts if a.name == name), None)

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
            "last_scan_inactive": None if self.last_scan_inactive is None
            else self.last_scan_inactive.to_json(),
            "alerts": {a.name: a.to_json() for a in self.alerts},
            "error": None if self.error is None else error_json(self.error),
        }


def verdict(enabled: bool, alerts: list[Alert]) -> str:
    if not enabled:
        return DISABLED
    severities = {a.severity for a in alerts if a.firing}
    if UNHEALTHY in severities:
        return UNHEALTHY
    return DEGRADED if severities else HEALTHY


def check_health(ctx: Context) -> HealthReport:
    """The guide's health check and its alerts, in one read-only transaction (the clock
    read on it too: a monitor of a server that does not answer waits for one connect
    timeout, not one for the clock and another for the check)."""
    with ctx.db.statements(readonly=True) as conn:
        ctx.db.learn_clock(conn)
        now = ctx.now()
        report = read_health(conn, ctx.settings, now)
    log.info("health %s: pending=%s executed_today=%s firing=%s", report.status,
             report.pending_jobs, report.executed_today,
             ",".join(a.name for a in report.firing) or "-")
    return report


def _age(now: datetime, then: datetime | None, unit: timedelta) -> float | None:
    return None if then is None else round(max(0.0, (now - then) / unit), 3)


def read_health(conn: Any, settings: Settings, now: datetime) -> HealthReport:
    """Health from an open (read-only) transaction: `check_health` and `serve` share it."""
    limits = settings.alerts
    day_start, day_end = local_day_bounds(now, settings.timezone)
    pending = health.count_by_status(conn, PENDING)
    executed_today = health.count_executed_between(conn, day_start, day_end)
    failures = health.count_failed_since(conn, now - WINDOW)
    executed_recent, delay_s = health.delay_since(conn, now - WINDOW)
    overdue = health.count_overdue(conn, now - WINDOW)
    last_due = health.last_run(conn, RUN_DUE, exclude=DEAD_RUN)
    last_scan = health.last_run(conn, SCAN_INACTIVE)
    last_scan_ok = health.last_run(conn, SCAN_INACTIVE, statuses=("ok",))
    first_due_at = None if last_scan_ok else health.first_finished_at(conn, RUN_DUE)

    last_at: datetime | None = None if last_due is None else last_due["finished_at"]
    age_min = _age(now, last_at, timedelta(minutes=1))
    fresh = age_min is not None and age_min <= limits.stale_minutes
    delay_min = None if delay_s is None else round(delay_s / 60, 3)
    if last_scan_ok is not None:
        scan_age = _age(now, last_scan_ok["finished_at"], timedelta(hours=1))
        scan_what = "hours since the last successful scan-inactive pass"
    else:
        scan_age = _age(now, first_due_at, timedelta(hours=1))
        scan_what = ("hours since the first run-due pass; no scan-inactive pass has "
                     "succeeded yet")
    alerts = [
        Alert("high_failure_rate", "follow-ups that failed in the last hour",
              failures, limits.failures_per_hour, "failures",
              failures > limits.failures_per_hour, DEGRADED),
        Alert("scheduler_down", "minutes since the last finished run-due pass",
              age_min, limits.stale_minutes, "minutes",
              settings.enabled and not fresh, UNHEALTHY),
        Alert("execution_delay",
              f"mean minutes from scheduled to executed, {executed_recent} executed in the "
              "last hour", delay_min, limits.delay_minutes, "minutes",
              delay_min is not None and delay_min > limits.delay_minutes, DEGRADED),
        Alert("pending_backlog", "pending follow-ups scheduled more than an hour ago",
              overdue, limits.overdue_backlog, "follow-ups",
              overdue > limits.overdue_backlog, DEGRADED),
        Alert("missed_daily_scan", scan_what, scan_age, limits.scan_hours, "hours",
              settings.enabled and scan_age is not None and scan_age > limits.scan_hours,
              DEGRADED),
    ]
    return HealthReport(
        status=verdict(settings.enabled, alerts), scheduler_running=settings.enabled and fresh,
        pending_jobs=pending, executed_today=executed_today, enabled=settings.enabled,
        database=settings.database_display, timezone=settings.timezone_name,
        checked_at=now, last_run_due_at=last_at,
        last_scan_inactive=None if last_scan is None else LastRun(
            last_scan["finished_at"], str(last_scan["status"]), dict(last_scan["counts"] or {})),
        alerts=alerts, sender=None if settings.sender is None else sender_display(settings.sender))


def unreachable_report(settings: Settings, now: datetime, error: FollowupError) -> HealthReport:
    """What health says when the database itself cannot be used."""
    return HealthReport(
        status=UNHEALTHY, scheduler_running=False, pending_jobs=None, executed_today=None,
        enabled=settings.enabled, database=settings.database_display,
        timezone=settings.timezone_name, checked_at=now, error=error,
        sender=None if settings.sender is None else sender_display(settings.sender))


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
    """The guide's key metrics. Figures `health` also shows carry health's names
    (`pending_jobs`, `executed_today`, `last_run_due_at`), and so do their Prometheus
    series (`followup_pending_jobs`, ...)."""

    generated_at: datetime
    timezone: str
    days: int
    pending_jobs: int
    executed_today: int
    failed_jobs: int
    recent_failures: list[dict[str, Any]]
    execution_rate: list[DayRate]
    templates: list[TemplateStats]
    last_run_due_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_at": iso(self.generated_at),
            "timezone": self.timezone,
            "days": self.days,
            "pending_jobs": self.pending_jobs,
            "executed_today": self.executed_today,
            "failed_jobs": self.failed_jobs,
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


def check_days(days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise InputError(f"days: {days} must be between 1 and {MAX_DAYS}")


def collect_stats(ctx: Context, days: int = 7) -> StatsResult:
    """The guide's key metrics 1–5 and template performance over the last `days` days."""
    check_days(days)
    now = ctx.now()
    with ctx.db.transaction(readonly=True) as conn:
        return read_stats(conn, ctx.settings, now, days)


def read_stats(conn: sa.Connection, settings: Settings, now: datetime, days: int
               ) -> StatsResult:
    """Stats from an open (read-only) transaction."""
    from followup_cli.store import monitoring  # SQLAlchemy Core: `health` does without

    check_days(days)
    calendar = local_days(now, settings.timezone, RATE_DAYS)
    pending = health.count_by_status(conn, PENDING)
    failed = health.count_by_status(conn, FAILED)
    per_day = monitoring.executed_per_bucket(conn, [(s, e) for _, s, e in calendar])
    failures = monitoring.recent_failures(conn, RECENT_FAILURES)
    templates = monitoring.template_counts(conn, now - timedelta(days=days))
    last = health.last_run(conn, RUN_DUE, exclude=DEAD_RUN)
    rate = []
    for i, (day, _, _) in enumerate(calendar):
        agg = per_day.get(i)
        rate.append(DayRate(day, agg.executed if agg else 0,
                            agg.avg_delay_seconds if agg else None))
    return StatsResult(
        generated_at=now, timezone=settings.timezone_name, days=days, pending_jobs=pending,
        executed_today=rate[0].executed, failed_jobs=failed, recent_failures=failures,
        execution_rate=rate, templates=[TemplateStats(*t) for t in templates],
        last_run_due_at=None if last is None else last["finished_at"])

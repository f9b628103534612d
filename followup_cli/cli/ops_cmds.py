"""Operator commands: health, stats, cleanup, list, show, retry, forget-user, templates."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from followup_cli.cli.common import JsonOpt, YesOpt, confirm, context, exit_with, output

if TYPE_CHECKING:
    from followup_cli.cli.output import Output
    from followup_cli.service.monitoring import HealthReport, StatsResult

templates_app = typer.Typer(
    help="Show and preview the message templates in force.", no_args_is_help=True,
    rich_markup_mode="markdown")


class StatsFormat(StrEnum):
    text = "text"
    prometheus = "prometheus"


def _asker(out: Output, what: str, yes: bool) -> Callable[[dict[str, int]], bool]:
    """A confirm callback for the service: asks with the counts it is about to delete."""

    def ask(counts: dict[str, int]) -> bool:
        listed = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        return confirm(out, f"Delete {listed} {what}?", yes)

    return ask


# --- health -----------------------------------------------------------------------------

def _show_health(out: Output, report: HealthReport) -> None:
    if out.json_mode:
        out.json(report.to_json())
        return
    style = {"healthy": "green", "disabled": "yellow", "degraded": "yellow"}.get(
        report.status, "red")
    out.line(f"status: {report.status}", style=style)
    out.fields([
        ("scheduler_running", report.scheduler_running),
        ("pending_jobs", report.pending_jobs),
        ("executed_today", report.executed_today),
        ("last_run_due_at", report.last_run_due_at),
        ("database", report.database),
        ("timezone", report.timezone),
    ])
    if report.error:
        out.line(f"error: {report.error}", style="red")
    if report.alerts:
        out.table(["alert", "value", "threshold", "firing"],
                  [(a.name, a.value, a.threshold, "FIRING" if a.firing else "ok")
                   for a in report.alerts], title="alerts")


def health(json: JsonOpt = False) -> None:
    """Check the scheduler: the guide's health check and its four alerts.

    Reports status, scheduler_running (enabled and a run-due pass finished within
    FOLLOWUP_ALERT_STALE_MINUTES), pending_jobs, executed_today (scheduler zone), the
    database in use, and each alert with its value and threshold: failures in the last hour
    (FOLLOWUP_ALERT_FAILURES), scheduler down, mean execution delay in the last hour
    (FOLLOWUP_ALERT_DELAY_MINUTES), overdue pending backlog (FOLLOWUP_ALERT_BACKLOG).
    Status: healthy; degraded (failure, delay or backlog alert); unhealthy (scheduler down
    or database unusable); disabled (SCHEDULER_ENABLED=false). Exit 0 when healthy or
    disabled, 1 when degraded or unhealthy, 4 when the database cannot be used.

    Example:

        followup health

        followup health --json || echo "follow-up scheduler needs attention"
    """
    out = output(json)
    from followup_cli.errors import DatabaseError
    from followup_cli.service.monitoring import check_health, unreachable_report

    ctx = context(read_only=True)
    try:
        report = check_health(ctx)
    except DatabaseError as error:
        # Still the one health document (status unhealthy), then the usual one-line error.
        _show_health(out, unreachable_report(ctx.settings, ctx.now(), error))
        typer.echo(f"followup: error: {error}", err=True)
        raise typer.Exit(int(error.exit_code)) from None
    _show_health(out, report)
    exit_with(0 if report.ok else 1)


# --- stats ------------------------------------------------------------------------------

def _show_stats(out: Output, stats: StatsResult) -> None:
    if out.json_mode:
        out.json(stats.to_json())
        return
    out.fields([("pending", stats.pending), ("executed_today", stats.executed_today),
                ("failed_total", stats.failed_total),
                ("last_run_due_at", stats.last_run_due_at), ("timezone", stats.timezone)])
    out.table(["id", "user_id", "error_message", "retry_count"],
              [(f["id"], f["user_id"], f["error_message"], f["retry_count"])
               for f in stats.recent_failures], title="recent failures")
    out.table(["date", "executed", "avg_delay_seconds"],
              [(d.date.isoformat(), d.executed,
                None if d.avg_delay_seconds is None else round(d.avg_delay_seconds, 1))
               for d in stats.execution_rate], title="execution rate")
    out.table(["template_id", "used", "executed", "failed"],
              [(t.template_id, t.used, t.executed, t.failed) for t in stats.templates],
              title=f"templates (created in the last {stats.days} days)")


def stats(
    days: Annotated[int, typer.Option(
        "--days", metavar="N", help="Window of the template figures, in days.")] = 7,
    fmt: Annotated[StatsFormat, typer.Option(
        "--format", help="text (tables or lines) or prometheus (text exposition).")
    ] = StatsFormat.text,
    json: JsonOpt = False,
) -> None:
    """Show the guide's key metrics and template performance.

    Pending follow-ups, executed today (scheduler zone), the 10 newest failures (id, user,
    error, retries), executions and mean delay per local day for the last 7 days, and per
    template how many were used, executed and failed over --days. `--format prometheus`
    prints the Prometheus text exposition for the node_exporter textfile collector.

    Example:

        followup stats --days 30

        followup stats --format prometheus > followup.prom.tmp && mv followup.prom.tmp followup.prom
    """
    out = output(json)
    from followup_cli.errors import InputError

    if json and fmt is StatsFormat.prometheus:
        raise InputError("--json and --format prometheus exclude each other")
    from followup_cli.service.monitoring import collect_stats

    result = collect_stats(context(read_only=True), days)
    if fmt is StatsFormat.prometheus:
        out.stream.write(result.to_prometheus())
        out.stream.flush()
        return
    _show_stats(out, result)


# --- cleanup ----------------------------------------------------------------------------

def cleanup(
    older_than_days: Annotated[float, typer.Option(
        "--older-than-days", metavar="DAYS", help="Keep rows that ended more recently.")
    ] = 90,
    include_failed: Annotated[bool, typer.Option(
        "--include-failed", help="Also delete failed follow-ups (by their last attempt).")
    ] = False,
    include_cancelled: Annotated[bool, typer.Option(
        "--include-cancelled", help="Also delete cancelled follow-ups (by cancelled_at).")
    ] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only count what would be deleted.")] = False,
    yes: YesOpt = False,
    json: JsonOpt = False,
) -> None:
    """Delete old follow-ups and run records (the guide's 90-day retention).

    Executed follow-ups older than --older-than-days (by executed_at) always; failed and
    cancelled ones only when asked; run records of passes finished before the same cutoff.
    Deletes 1,000 rows per transaction, so a large clean-up never holds long locks. Asks on
    a terminal; cron needs --yes.

    Example:

        followup cleanup --dry-run

        followup cleanup --older-than-days 90 --include-cancelled --yes
    """
    out = output(json)
    from followup_cli.service.maintenance import cleanup as run_cleanup

    result = run_cleanup(context(read_only=dry_run), older_than_days=older_than_days,
                         include_failed=include_failed, include_cancelled=include_cancelled,
                         dry_run=dry_run, confirm=_asker(out, "rows", yes))
    if out.json_mode:
        out.json(result.to_json())
        return
    verb = "would delete" if result.dry_run else "deleted"
    if result.aborted:
        out.line("aborted: nothing deleted")
        return
    out.line(f"{verb} {result.total} rows older than {result.cutoff:%Y-%m-%d %H:%M} UTC"
             + ("" if result.dry_run else f" in {result.batches} batches"))
    out.table(["kind", "rows"], sorted(result.counts.items()))


# --- list / show / retry ----------------------------------------------------------------

def list_cmd(
    user_id: Annotated[str | None, typer.Option("--user-id", metavar="USER",
                                                help="Only this user's.")] = None,
    status: Annotated[list[str] | None, typer.Option(
        "--status", metavar="STATUS",
        help="pending, processing, executed, failed or cancelled (repeatable).")] = None,
    trigger_type: Annotated[str | None, typer.Option(
        "--trigger-type", metavar="TYPE", help="post_event or reengagement.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="TIME", help="scheduled_at at or after this (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", metavar="TIME", help="scheduled_at before this (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="At most N rows.")] = 50,
    json: JsonOpt = False,
) -> None:
    """List follow-ups, newest scheduled first.

    Filters combine; times without an offset are read in SCHEDULER_TIMEZONE. Message
    content is never listed (see `followup show --show-message`).

    Example:

        followup list --status failed --since 2026-11-01

        followup list --user-id u42 --trigger-type post_event --limit 10 --json
    """
    out = output(json)
    from followup_cli.service.browse import list_followups

    result = list_followups(context(read_only=True), user_id=user_id, statuses=status,
                            trigger_type=trigger_type, since=since, until=until, limit=limit)
    if out.json_mode:
        out.json(result.to_json())
        return
    if not result.followups:
        out.line("no follow-ups matched")
        return
    out.table(["id", "user_id", "type", "status", "scheduled_at", "template_id", "retries"],
              [(r["id"], r["user_id"], r["trigger_type"], r["status"], r["scheduled_at"],
                r["template_id"], r["retry_count"]) for r in result.followups])


def show(
    followup_id: Annotated[str, typer.Argument(metavar="ID", help="The follow-up id.")],
    show_message: Annotated[bool, typer.Option(
        "--show-message", help="Include the message and custom message (may be personal "
                               "data).")] = False,
    json: JsonOpt = False,
) -> None:
    """Show every column of one follow-up.

    The message content and the custom message are withheld unless --show-message is given,
    since they may hold personal data. An unknown id exits 2.

    Example:

        followup show 5f0c6d1e-8a8f-4c1e-9f59-2f7d0c6f1b2a --show-message
    """
    out = output(json)
    from followup_cli.service.browse import HIDDEN, show_followup

    result = show_followup(context(read_only=True), followup_id, show_message=show_message)
    if out.json_mode:
        out.json(result.to_json())
        return
    import json as jsonlib

    pairs = [(k, jsonlib.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v)
             for k, v in result.row.items()]
    if not show_message:
        pairs = [(k, HIDDEN if k == "message_content" else v) for k, v in pairs]
    out.fields(pairs)


def retry(
    ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Failed follow-up ids.")],
    json: JsonOpt = False,
) -> None:
    """Put failed follow-ups back to pending, due now.

    Each gets a fresh retry budget (retry_count 0) and is delivered by the next run-due;
    scheduled_at is kept, so the delay metric still counts from it, and the last
    error_message stays until the next attempt. An unknown id exits 2; one that is not
    failed (or a re-engagement whose user already has a pending one) exits 3; with several
    ids the highest code wins.

    Example:

        followup retry 5f0c6d1e-8a8f-4c1e-9f59-2f7d0c6f1b2a

        followup list --status failed --json | jq -r '.followups[].id' | xargs followup retry
    """
    out = output(json)
    from followup_cli.service.maintenance import retry as run_retry

    result = run_retry(context(), ids)
    if out.json_mode:
        out.json(result.to_json())
    else:
        for o in result.outcomes:
            text = {
                "retried": f"{o.id}: pending again, due now",
                "not_found": f"{o.id}: no such follow-up",
                "not_failed": f"{o.id}: not failed (it is {o.status}), left as it is",
                "live_reengagement": f"{o.id}: the user already has a pending "
                                     "re-engagement, left failed",
                "at_cap": f"{o.id}: the user is at FOLLOWUP_MAX_PENDING_PER_USER, left "
                          "failed",
                "duplicate_pending": f"{o.id}: a pending post-event follow-up of the user "
                                     "is within a day of this event, left failed",
            }[o.outcome]
            out.line(text, style=None if o.exit_code == 0 else "red")
    exit_with(result.exit_code)


# --- forget-user ------------------------------------------------------------------------

def forget_user(
    user_id: Annotated[str, typer.Argument(metavar="USER_ID", help="The user to forget.")],
    yes: YesOpt = False,
    json: JsonOpt = False,
) -> None:
    """Delete everything stored about a user (right to be forgotten).

    Their follow-ups, their messages (and every message of their conversations) and their
    conversations go in one transaction. Refused (exit 3, nothing deleted) while one of
    their follow-ups is being delivered: run it again after the pass. A user with nothing
    stored is a no-op (exit 0). Asks on a terminal; scripts need --yes.

    Example:

        followup forget-user u42 --yes --json
    """
    out = output(json)
    from followup_cli.service.maintenance import forget_user as run_forget

    result = run_forget(context(), user_id, confirm=_asker(out, f"of user {user_id!r}", yes))
    if out.json_mode:
        out.json(result.to_json())
        return
    if result.aborted:
        out.line("aborted: nothing deleted")
        return
    c = result.counts
    out.line(f"deleted {c['followups']} follow-ups, {c['messages']} messages, "
             f"{c['conversations']} conversations of user {result.user_id}")


# --- templates --------------------------------------------------------------------------

@templates_app.command("list")
def templates_list(json: JsonOpt = False) -> None:
    """List the templates in force.

    The built-ins and those of FOLLOWUP_TEMPLATES_FILE (which override built-ins of the same
    id), with their source, placeholders and first line. A broken templates file exits 2
    naming the template and the problem.

    Example:

        FOLLOWUP_TEMPLATES_FILE=templates.toml followup templates list
    """
    out = output(json)
    from followup_cli.service.browse import list_templates

    result = list_templates(context())
    if out.json_mode:
        out.json(result.to_json())
        return
    out.table(["id", "source", "placeholders", "first line"],
              [(t.id, t.source, ", ".join(t.placeholders) or "-", t.first_line)
               for t in result.templates])


@templates_app.command("preview")
def templates_preview(
    template_id: Annotated[str, typer.Argument(metavar="ID", help="Template id.")],
    event_date: Annotated[str | None, typer.Option(
        "--event-date", metavar="TIME", help="For {event_date} (ISO 8601).")] = None,
    booking_id: Annotated[str | None, typer.Option(
        "--booking-id", metavar="ID", help="For {booking_id}.")] = None,
    days_inactive: Annotated[str | None, typer.Option(
        "--days-inactive", metavar="N", help="For {days_inactive}.")] = None,
    custom_message: Annotated[str | None, typer.Option(
        "--custom-message", metavar="TEXT", help="For {custom_message}.")] = None,
    json: JsonOpt = False,
) -> None:
    """Render a template the way a follow-up would read.

    Placeholders not given get sample values (today's date, B-1001,
    REENGAGEMENT_INACTIVE_DAYS, a short custom message); the output says which.

    Example:

        followup templates preview post_event_high_emotion --event-date 2026-11-14T18:00
    """
    out = output(json)
    from followup_cli.service.browse import preview_template

    result = preview_template(context(), template_id, event_date=event_date,
                              booking_id=booking_id, days_inactive=days_inactive,
                              custom_message=custom_message)
    if out.json_mode:
        out.json(result.to_json())
        return
    out.fields([("template", result.template.id), ("source", result.template.source),
                ("sample values", ", ".join(result.sampled) or "-")])
    out.line("")
    out.line(result.message)


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    root.command("health")(health)
    root.command("stats")(stats)
    root.command("cleanup")(cleanup)
    root.command("list")(list_cmd)
    root.command("show")(show)
    root.command("retry")(retry)
    root.command("forget-user")(forget_user)
    root.add_typer(templates_app, name="templates")

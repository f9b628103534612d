"""Operator commands: health, stats, cleanup, list, show, retry, forget-user, templates."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from followup_cli.cli.common import (
    JsonOpt,
    Status,
    TriggerTypeOpt,
    YesOpt,
    confirm,
    context,
    exit_with,
    finite,
    output,
)
from followup_cli.cli.output import cell
from followup_cli.settings import MAX_DAYS

if TYPE_CHECKING:
    from followup_cli.cli.output import Output
    from followup_cli.service.browse import (
        ListPage,
        TemplateExplanation,
        TemplateInfo,
        TemplateList,
    )
    from followup_cli.service.bulk_retry import BulkRetryResult
    from followup_cli.service.maintenance import RetryResult
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

def _show_health(out: Output, report: HealthReport, *, quiet: bool = False) -> None:
    if out.json_mode:
        out.json(report.to_json())
        return
    if quiet:
        # One stable line while the same alerts fire: a cron wrapper that mails changes
        # (deploy/followup-cron) then mails each new problem once, not every check.
        if not report.ok and report.error is None:
            firing = ", ".join(a.name for a in report.firing)
            out.line(f"followup health: {report.status}" + (f" ({firing})" if firing else ""))
        return
    style = {"healthy": "green", "disabled": "yellow", "degraded": "yellow"}.get(
        report.status, "red")
    out.line(f"status: {report.status}", style=style)
    scan = report.last_scan_inactive
    out.fields([
        ("scheduler_running", report.scheduler_running),
        ("pending_jobs", report.pending_jobs),
        ("executed_today", report.executed_today),
        ("last_run_due_at", report.last_run_due_at),
        ("last_scan_inactive", None if scan is None else
         f"{cell(scan.finished_at)} {scan.status}" + "".join(
             f", {k} {scan.counts[k]}" for k in SCAN_COUNTS if k in scan.counts)),
        ("database", report.database),
        ("sender", report.sender),
        ("timezone", report.timezone),
    ])
    if report.error:
        out.line(f"error: {report.error}", style="red")
    if report.alerts:
        out.table(["alert", "value", "threshold", "firing"],
                  [(a.name, a.value, f"{cell(a.threshold)} {a.unit}",
                    "FIRING" if a.firing else "ok") for a in report.alerts], title="alerts")


# The scan counts worth a glance on the health screen (all of them are in --json).
SCAN_COUNTS = ("candidates", "scheduled", "skipped_cap")


def health(
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Nothing when healthy or disabled; otherwise one line: the "
                              "status and the firing alerts (for cron).")] = False,
    json: JsonOpt = False,
) -> None:
    """Check the scheduler: the guide's health check, its four alerts and the daily scan.

    Reports status, scheduler_running (enabled and a run-due pass finished within
    FOLLOWUP_ALERT_STALE_MINUTES), pending_jobs, executed_today (scheduler zone), the last
    run-due and scan-inactive passes, the database in use, and each alert with its value
    and threshold: failures in the last hour (FOLLOWUP_ALERT_FAILURES), scheduler down,
    mean execution delay in the last hour (FOLLOWUP_ALERT_DELAY_MINUTES), overdue pending
    backlog (FOLLOWUP_ALERT_BACKLOG), and no successful scan-inactive for
    FOLLOWUP_ALERT_SCAN_HOURS (25; before the first scan, counted from the first run-due
    pass). Status: healthy; degraded (failure, delay, backlog or scan alert); unhealthy
    (scheduler down or database unusable); disabled (SCHEDULER_ENABLED=false). Exit 0 when
    healthy or disabled, 1 when degraded or unhealthy, 4 when the database cannot be used
    (with --json the document still comes, its `error` set).

    Example:

        followup health

        followup health --json || echo "follow-up scheduler needs attention"

        followup health --quiet    # cron: prints only when something needs attention
    """
    out = output(json)
    from followup_cli.errors import DatabaseError
    from followup_cli.service.monitoring import check_health, unreachable_report
    from followup_cli.timeutil import utcnow

    ctx = context(read_only=True)
    try:
        report = check_health(ctx)
    except DatabaseError as error:
        # Still the one health document (status unhealthy), then the usual one-line error.
        # This host's clock: the database's cannot be read, and trying again would wait
        # for another connect timeout.
        _show_health(out, unreachable_report(ctx.settings, utcnow(), error), quiet=quiet)
        typer.echo(f"followup: error: {error}", err=True)
        raise typer.Exit(int(error.exit_code)) from None
    _show_health(out, report, quiet=quiet)
    exit_with(0 if report.ok else 1)


# --- stats ------------------------------------------------------------------------------

def _show_stats(out: Output, stats: StatsResult) -> None:
    if out.json_mode:
        out.json(stats.to_json())
        return
    out.fields([("pending_jobs", stats.pending_jobs), ("executed_today", stats.executed_today),
                ("failed_jobs", stats.failed_jobs),
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
        "--days", metavar="N", min=1, max=MAX_DAYS,
        help="Window of the template figures, in days.")] = 7,
    fmt: Annotated[StatsFormat, typer.Option(
        "--format", help="text (tables or lines) or prometheus (text exposition).")
    ] = StatsFormat.text,
    json: JsonOpt = False,
) -> None:
    """Show the guide's key metrics and template performance.

    pending_jobs, executed_today (scheduler zone), failed_jobs, the 10 newest failures (id,
    user, error, retries), executions and mean delay per local day for the last 7 days, and
    per template how many were used, executed and failed over --days. `--format
    prometheus` prints the Prometheus text exposition, the same as `followup serve`
    answers on /metrics: these figures plus every health alert's value, threshold and
    state (see docs/monitoring.md), for the node_exporter textfile collector.

    Example:

        followup stats --days 30

        followup stats --format prometheus > followup.prom.tmp && mv followup.prom.tmp followup.prom
    """
    out = output(json)
    from followup_cli.errors import InputError

    if json and fmt is StatsFormat.prometheus:
        raise InputError("--json and --format prometheus exclude each other")
    ctx = context(read_only=True)
    if fmt is StatsFormat.prometheus:
        from followup_cli.service.metrics import collect_metrics, exposition

        out.stream.write(exposition(collect_metrics(ctx, days)))
        out.stream.flush()
        return
    from followup_cli.service.monitoring import collect_stats

    _show_stats(out, collect_stats(ctx, days))


# --- cleanup ----------------------------------------------------------------------------

def cleanup(
    older_than_days: Annotated[float, typer.Option(
        "--older-than-days", metavar="DAYS", min=0, max=MAX_DAYS, callback=finite,
        help="Keep rows that ended more recently.")] = 90,
    include_failed: Annotated[bool, typer.Option(
        "--include-failed", help="Also delete failed follow-ups (by their last attempt).")
    ] = False,
    include_cancelled: Annotated[bool, typer.Option(
        "--include-cancelled", help="Also delete cancelled follow-ups (by cancelled_at).")
    ] = False,
    conversations_older_than_days: Annotated[float | None, typer.Option(
        "--conversations-older-than-days", metavar="DAYS", show_default=False,
        help="Also delete conversations (and their messages) whose last message is older; "
             "off by default.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only count what would be deleted.")] = False,
    yes: YesOpt = False,
    json: JsonOpt = False,
) -> None:
    """Delete old follow-ups and run records (the guide's 90-day retention).

    Executed follow-ups older than --older-than-days (by executed_at) always; failed and
    cancelled ones only when asked; run records of passes finished before the same cutoff.
    With --conversations-older-than-days, also the conversation memory: conversations whose
    last message (or, with none, their creation) is older, with all their messages; one a
    pending or in-flight follow-up points at is kept until that follow-up has ended.
    Deletes 1,000 rows (or conversations) per transaction, so a large clean-up never holds
    long locks. Asks on a terminal; cron needs --yes.

    Example:

        followup cleanup --dry-run

        followup cleanup --older-than-days 90 --include-cancelled --yes

        followup cleanup --conversations-older-than-days 365 --yes
    """
    out = output(json)
    from followup_cli.service.maintenance import cleanup as run_cleanup

    with out.progress("deleting") as progress:
        result = run_cleanup(context(read_only=dry_run), older_than_days=older_than_days,
                             include_failed=include_failed,
                             include_cancelled=include_cancelled,
                             conversations_older_than_days=conversations_older_than_days,
                             dry_run=dry_run, confirm=_asker(out, "rows", yes),
                             progress=progress)
    for warning in result.warnings:
        typer.echo(f"followup: warning: {warning}", err=True)
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
    if result.conversations_kept_live:
        out.line(f"kept {result.conversations_kept_live} old conversations that pending "
                 "follow-ups point at (deleted once those have ended)")


# --- list / show / retry ----------------------------------------------------------------

TABLE_MAX = 1000  # more rows than this are listed as plain lines, even on a terminal


def _show_list(out: Output, page: ListPage) -> None:
    columns = ["id", "user_id", "type", "status", "scheduled_at", "template_id", "retries"]

    def cells(row: dict[str, object]) -> list[object]:
        return [row["id"], row["user_id"], row["trigger_type"], row["status"],
                row["scheduled_at"], row["template_id"], row["retry_count"]]

    if not out.terminal or page.shown > TABLE_MAX:
        from followup_cli.cli.output import Output

        # Streamed, one line per row, whatever the count: constant memory.
        Output(json_mode=False, stream=out.stream, terminal=False).table(
            columns, (cells(r) for r in page.rows))
        return
    from datetime import UTC, datetime

    def compact(row: dict[str, object]) -> list[object]:
        values = cells(row)
        at = values[4]
        if isinstance(at, datetime):
            values[4] = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        return values

    columns[4] = "scheduled (UTC)"
    out.table(columns, [compact(r) for r in page.rows], whole=("id",),
              optional=("type", "user_id", "retries", "template_id"))
    if page.shown < page.total:
        out.line(f"{page.shown} of {page.total} shown (--limit N for more, --limit 0 for "
                 "all)", style="dim")


def list_cmd(
    user_id: Annotated[str | None, typer.Option("--user-id", metavar="USER",
                                                help="Only this user's.")] = None,
    status: Annotated[list[Status] | None, typer.Option(
        "--status", metavar="STATUS", case_sensitive=False,
        help="pending, processing, executed, failed or cancelled (repeatable).")] = None,
    trigger_type: TriggerTypeOpt = None,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="TIME", help="scheduled_at at or after this (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", metavar="TIME", help="scheduled_at before this (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option(
        "--limit", metavar="N", min=0,
        help="At most N rows; 0 lists every match, streamed.")] = 50,
    json: JsonOpt = False,
) -> None:
    """List follow-ups, newest scheduled first.

    Filters combine; times without an offset are read in SCHEDULER_TIMEZONE. Message
    content is never listed (see `followup show --show-message`). `--limit 0` lists every
    match, read and written a thousand rows at a time, so memory stays flat for millions.
    With --json the document has `total` (every match), `limit`, `count` (rows listed) and
    `followups`, one row per line. On a narrow terminal ids stay whole and columns that do
    not fit are left out (and named).

    Example:

        followup list --status failed --since 2026-11-01

        followup list --user-id u42 --trigger-type post_event --limit 10 --json

        followup list --status failed --limit 0 --json > failed.json
    """
    out = output(json)
    from followup_cli.service.browse import browse_followups, summary_json

    with browse_followups(
            context(read_only=True), user_id=user_id, statuses=[s.value for s in status or []],
            trigger_type=None if trigger_type is None else trigger_type.value, since=since,
            until=until, limit=limit) as page:
        if out.json_mode:
            out.json_stream({"total": page.total, "limit": page.limit}, "followups",
                            (summary_json(r) for r in page.rows), lambda n: {"count": n})
            return
        if not page.total:
            out.line("no follow-ups matched")
            return
        _show_list(out, page)


IdArg = Annotated[str, typer.Argument(
    metavar="ID", help="The follow-up id, or a unique prefix of at least 8 characters.")]


def show(
    followup_id: IdArg,
    show_message: Annotated[bool, typer.Option(
        "--show-message", help="Include the message and custom message (may be personal "
                               "data).")] = False,
    json: JsonOpt = False,
) -> None:
    """Show every column of one follow-up.

    The id may be shortened to a unique prefix of at least 8 characters, as with git; an
    ambiguous prefix exits 2 listing the ids it starts. The message content and the custom
    message are withheld unless --show-message is given, since they may hold personal data.
    An unknown id exits 2.

    Example:

        followup show 5f0c6d1e-8a8f-4c1e-9f59-2f7d0c6f1b2a --show-message

        followup show 5f0c6d1e
    """
    out = output(json)
    from followup_cli.service.browse import HIDDEN, show_followup
    from followup_cli.service.ids import resolve_id

    ctx = context(read_only=True)
    result = show_followup(ctx, resolve_id(ctx, followup_id), show_message=show_message)
    if out.json_mode:
        out.json(result.to_json())
        return
    import json as jsonlib

    pairs = [(k, jsonlib.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v)
             for k, v in result.row.items()]
    if not show_message:
        pairs = [(k, HIDDEN if k == "message_content" else v) for k, v in pairs]
    out.fields(pairs)


RETRY_TEXT = {
    "retried": "{id}: pending again, due now",
    "not_found": "{id}: no such follow-up",
    "not_failed": "{id}: not failed (it is {status}), left as it is",
    "live_reengagement": "{id}: the user already has a pending re-engagement, left failed",
    "at_cap": "{id}: the user is at FOLLOWUP_MAX_PENDING_PER_USER, left failed",
    "duplicate_pending": "{id}: a pending post-event follow-up of the user is within a day "
                         "of this event, left failed",
}


def _show_retry(out: Output, result: RetryResult) -> None:
    if out.json_mode:
        out.json(result.to_json())
        return
    for o in result.outcomes:
        out.line(RETRY_TEXT[o.outcome].format(id=o.id, status=o.status),
                 style=None if o.exit_code == 0 else "red")


def _show_bulk_retry(out: Output, result: BulkRetryResult) -> None:
    if out.json_mode:
        out.json(result.to_json())
        return
    if not result.matched:
        out.line("no failed follow-ups matched")
        return
    others = ", ".join(f"{n} {k}" for k, n in sorted(result.counts.items()) if k != "retried")
    out.line(f"retried {result.retried} of {result.matched} failed follow-ups (due now)"
             + (f"; {others}" if others else ""))
    for o in result.refused:
        out.line(RETRY_TEXT[o.outcome].format(id=o.id, status=o.status), style="red")
    hidden = sum(n for k, n in result.counts.items() if k in RETRY_TEXT and k not in (
        "retried", "not_found", "not_failed")) - len(result.refused)
    if hidden > 0:
        out.line(f"... and {hidden} more left failed (see --json or `followup list --status "
                 "failed`)")


def retry(
    ids: Annotated[list[str] | None, typer.Argument(
        metavar="[ID]...", show_default=False,
        help="Failed follow-up ids (or unique prefixes of at least 8 characters).")] = None,
    failed: Annotated[bool, typer.Option(
        "--failed", help="Retry every failed follow-up matching the filters below.")
    ] = False,
    user_id: Annotated[str | None, typer.Option(
        "--user-id", metavar="USER", help="With --failed: only this user's.")] = None,
    trigger_type: TriggerTypeOpt = None,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="TIME",
        help="With --failed: only those that failed (last attempt) at or after this "
             "(ISO 8601).")] = None,
    json: JsonOpt = False,
) -> None:
    """Put failed follow-ups back to pending, due now.

    Each gets a fresh retry budget (retry_count 0) and is delivered by the next run-due;
    scheduled_at is kept, so the delay metric still counts from it, and the last
    error_message stays until the next attempt. A retry may not take a user past
    FOLLOWUP_MAX_PENDING_PER_USER, duplicate a pending post-event within a day, or add a
    second pending re-engagement: those are left failed (exit 3).

    By id: ids may be unique prefixes of at least 8 characters; an unknown id exits 2, one
    that is not failed exits 3; with several ids the highest code wins.

    With --failed: every failed follow-up that matches --user-id, --trigger-type and
    --since, however many, a few hundred per transaction; exit 3 when a rule left some
    failed, else 0.

    Example:

        followup retry 5f0c6d1e-8a8f-4c1e-9f59-2f7d0c6f1b2a

        followup retry --failed --since 2026-11-26T08:00
    """
    out = output(json)
    from followup_cli.errors import InputError

    filters = {"--user-id": user_id, "--trigger-type": trigger_type, "--since": since}
    if failed and ids:
        raise InputError("give follow-up ids or --failed, not both")
    if not failed:
        given = [name for name, value in filters.items() if value is not None]
        if given:
            raise InputError(f"{given[0]} goes with --failed")
        if not ids:
            raise InputError("give follow-up ids, or --failed to retry every failed one")
    ctx = context()
    if failed:
        from followup_cli.service.bulk_retry import retry_failed

        bulk = retry_failed(ctx, user_id=user_id, since=since,
                            trigger_type=None if trigger_type is None else trigger_type.value)
        _show_bulk_retry(out, bulk)
        exit_with(bulk.exit_code)
        return
    from followup_cli.service.ids import resolve_ids
    from followup_cli.service.maintenance import retry as run_retry

    result = run_retry(ctx, resolve_ids(ctx, list(ids or [])))
    _show_retry(out, result)
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

    # Not named in the question: without a terminal it becomes the error line, and error
    # output ends up in logs.
    result = run_forget(context(), user_id, confirm=_asker(out, "of this user", yes))
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

    _show_templates(out, list_templates(context()))


def _show_templates(out: Output, result: TemplateList) -> None:
    if out.json_mode:
        out.json(result.to_json())
        return
    from pathlib import Path

    def source(t: TemplateInfo) -> str:  # the file's name: its path is in the header
        return t.source if t.source == "built-in" else Path(t.source).name

    if result.templates_file:
        out.line(f"templates file: {result.templates_file}")
    out.table(["id", "source", "placeholders", "first line"],
              [(t.id, source(t), ", ".join(t.placeholders) or "-", t.first_line)
               for t in result.templates], whole=("id",), first_line=("first line",))


@templates_app.command("preview")
def templates_preview(
    template_id: Annotated[str, typer.Argument(metavar="ID", help="Template id.")],
    event_date: Annotated[str | None, typer.Option(
        "--event-date", metavar="TIME", help="For {event_date} (ISO 8601).")] = None,
    booking_id: Annotated[str | None, typer.Option(
        "--booking-id", metavar="ID", help="For {booking_id}.")] = None,
    days_inactive: Annotated[int | None, typer.Option(
        "--days-inactive", metavar="N", min=0, max=MAX_DAYS, help="For {days_inactive}.")
    ] = None,
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


def _show_explanation(out: Output, result: TemplateExplanation) -> None:
    if out.json_mode:
        out.json(result.to_json())
        return
    from followup_cli.store.conversations import EMOTION_WINDOW

    if not result.conversation_found:
        out.line(f"conversation {result.conversation_id!r} is not stored (yet): it gets "
                 "the neutral templates", style="yellow")
    if result.messages:
        out.table(["time", "role", "emotion score"],
                  [(m.created_at, m.role, m.emotion_score) for m in result.messages],
                  title=f"last {len(result.messages)} scored messages (of at most "
                        f"{EMOTION_WINDOW}), newest first")
    elif result.conversation_found:
        out.line("no scored messages: the neutral templates apply")
    out.fields([("mean", "no scores" if result.mean is None else f"{result.mean:g}"),
                ("band", result.band)]
               + [(f"{kind} template", f"{t.id} ({t.source})")
                  for kind, t in result.templates.items()])


@templates_app.command("explain")
def templates_explain(
    conversation_id: Annotated[str, typer.Option(
        "--conversation-id", metavar="CONV", help="The conversation to explain.")],
    json: JsonOpt = False,
) -> None:
    """Show why a conversation gets the template it gets.

    Lists the conversation's last 5 messages that carry an emotion score (time, role and
    score; never the content), their mean rounded to 6 decimals as the rules round it, the
    band (high from 0.7, neutral from 0.4, else low; no scores: neutral) and the template
    each trigger type would get, with the same functions scheduling uses. The guide's
    "wrong template selected" check.

    Example:

        followup templates explain --conversation-id c7
    """
    out = output(json)
    from followup_cli.service.browse import explain_templates

    _show_explanation(out, explain_templates(context(read_only=True), conversation_id))


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

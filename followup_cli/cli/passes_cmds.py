"""`followup scan-inactive`, `schedule import`, `conversations import` and `demo`."""

from __future__ import annotations

from typing import Annotated

import typer

from followup_cli.cli.common import JsonOpt, YesOpt, context, output, warn_if_embedded

conversations_app = typer.Typer(
    help="Load conversation history (backfills, trials).", no_args_is_help=True,
    rich_markup_mode="markdown")

FileArg = Annotated[str, typer.Argument(
    metavar="FILE", help="The file to read; - reads standard input.", show_default=False)]


def scan_inactive(
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Count and show a sample of who would be re-engaged; change "
                          "nothing.")] = False,
    limit: Annotated[int | None, typer.Option(
        "--limit", metavar="N", min=0,
        help="Schedule at most N this pass (longest inactive first); the rest wait for the "
             "next pass.")] = None,
    json: JsonOpt = False,
) -> None:
    """Schedule a re-engagement for every inactive user (cron: daily at 9 AM).

    A user is inactive when the newest message they sent (role user) is
    REENGAGEMENT_INACTIVE_DAYS (30) or more days old. Each gets one re-engagement, due at
    once, attached to their most recent conversation and worded by its emotion; at most one
    per inactivity period, so running the pass again (or twice at once) schedules nothing
    new. Users at FOLLOWUP_MAX_PENDING_PER_USER are skipped and counted. With
    SCHEDULER_ENABLED=false it does nothing and exits 0.

    Example:

        followup scan-inactive --dry-run

        followup scan-inactive --json
    """
    out = output(json)
    from followup_cli.service.scanning import ScanOptions
    from followup_cli.service.scanning import scan_inactive as scan

    ctx = context(read_only=dry_run)
    warn_if_embedded(ctx.settings)
    label = "finding inactive users" if dry_run else "scheduling re-engagements"
    with out.progress(label) as progress:
        result = scan(ctx, ScanOptions(dry_run=dry_run, limit=limit), progress)
    if out.json_mode:
        out.json(result.to_json())
        return
    from followup_cli.cli.pass_report import show_scan

    show_scan(out, result)  # silent under cron when it worked


def import_cmd(
    file: FileArg,
    fmt: Annotated[str | None, typer.Option(
        "--format", metavar="FORMAT",
        help="jsonl or csv [default: from the extension; for stdin, from the first line].")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Schedule many follow-ups from a JSON Lines or CSV file, all or nothing.

    Fields: type (post_event or reengagement), user_id, conversation_id, event_date,
    booking_id, custom_message (post_event), days_inactive, at (reengagement), and
    optionally delay_hours and template. Every row is checked like a command line first; a
    bad row exits 2 naming its line, and a row that would exceed the per-user cap exits 3:
    in both cases nothing of the file is written. Duplicates (inside the file or against
    the database) are skipped and reported with the existing id.

    Example:

        followup schedule import bookings.jsonl

        followup schedule import --format csv - < bookings.csv
    """
    out = output(json)
    from followup_cli.service.importing import import_schedule

    ctx = context()
    # a file is followed by the bytes read of it; standard input by the rows read
    with out.progress("scheduling", in_bytes=file != "-") as progress:
        result = import_schedule(ctx, file, fmt=fmt, progress=progress)
    if out.json_mode:
        out.json(result.to_json())
        return
    out.line(f"imported {result.source} ({result.format}): {result.rows} rows, "
             f"{result.scheduled} scheduled ({result.scheduled_post_event} post-event, "
             f"{result.scheduled_reengagement} re-engagement), "
             f"{len(result.duplicates)} duplicates skipped")
    shown = result.duplicates[:20]
    if shown:
        out.table(["line", "user", "type", "existing id"],
                  [(d.line, d.user_id, d.trigger_type, d.existing_id) for d in shown],
                  title="duplicates" + (f" (first {len(shown)})"
                                        if len(result.duplicates) > len(shown) else ""))


@conversations_app.command("import")
def conversations_import(file: FileArg, json: JsonOpt = False) -> None:
    """Load conversations and messages from JSON Lines into the conversation memory.

    One message per line: conversation_id, user_id, role (user, assistant or system),
    content, emotion_score (0 to 1, or null), created_at (ISO 8601; without an offset it is
    read in SCHEDULER_TIMEZONE), and optionally message_id and title. Conversations are
    created as needed. Every line is checked first; a bad line exits 2 naming it and
    nothing is written. Importing the same file again adds nothing.

    Example:

        followup conversations import history.jsonl
    """
    out = output(json)
    from followup_cli.service.history import import_history

    with out.progress("importing messages") as progress:
        result = import_history(context(), file, progress=progress)
    if out.json_mode:
        out.json(result.to_json())
        return
    out.line(f"imported {result.source}: {result.messages_imported} messages, "
             f"{result.conversations_created} new conversations, "
             f"{result.messages_skipped} already present")


def demo(yes: YesOpt = False, json: JsonOpt = False) -> None:
    """Try followup end to end on sample data: seed, schedule, deliver, explain.

    Seeds seven sample users (ids demo-*) with happy, neutral and unhappy conversations,
    some quiet for weeks; schedules their post-event follow-ups and runs scan-inactive for
    them; runs one delivery pass into an in-memory sender (nothing is sent anywhere) and
    shows each message with the template and the emotion mean that chose it. Run it again
    at will: each run replaces the previous demo rows. It uses the embedded database unless
    DATABASE_URL is set, and asks before writing sample rows into PostgreSQL.

    Example:

        followup demo

        DATABASE_URL=sqlite:////tmp/try.db followup demo --json
    """
    out = output(json)
    from followup_cli.cli.common import confirm
    from followup_cli.service.demo import run_demo

    ctx = context()
    if ctx.db.is_postgres and not confirm(
            out, f"Write demo sample rows into {ctx.settings.database_display}?", yes):
        raise typer.Exit(0)
    result = run_demo(ctx, allow_shared=True)
    if out.json_mode:
        out.json(result.to_json())
        return
    out.line(f"followup demo on {result.database}", style="bold")
    if result.replaced_rows:
        out.line(f"replaced the previous demo run's {result.replaced_rows} rows")
    out.line(f"seeded {result.users} users and {result.messages} messages; scheduled "
             f"{result.post_events_scheduled} post-event follow-ups and "
             f"{result.reengagements_scheduled} re-engagements; one delivery pass sent "
             f"{result.delivered}:")
    out.line("")
    # Message text reads badly in table cells: one heading line and the message below.
    for d in result.deliveries:
        out.line(f"{d.user_id}: {d.template_id} ({d.reason})", style="bold")
        out.line(f"    {d.message}")
    if result.not_contacted:
        out.line("")
        out.line(f"not contacted: {', '.join(result.not_contacted)} (active recently, no "
                 "event)")
    out.line("")
    out.line("Next: `followup list`, `followup stats`, or schedule your own with "
             "`followup schedule post-event --help`.")


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    from followup_cli.cli import schedule_cmds

    root.command("scan-inactive")(scan_inactive)
    root.command("demo")(demo)
    root.add_typer(conversations_app, name="conversations")
    schedule_cmds.app.command("import")(import_cmd)

"""`followup schedule ...` and `followup cancel`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from followup_cli.cli.common import JsonOpt, TriggerTypeOpt, context, exit_with, finite, output
from followup_cli.settings import MAX_DAYS, MAX_DELAY_HOURS

if TYPE_CHECKING:
    from followup_cli.cli.output import Output
    from followup_cli.service.scheduling import CancelResult, ScheduleResult

app = typer.Typer(
    help="Schedule follow-ups (post-event, re-engagement, or many from a file).",
    no_args_is_help=True, rich_markup_mode="markdown")

UserOpt = Annotated[str, typer.Option("--user-id", metavar="USER", help="The user to follow up.")]
TemplateOpt = Annotated[str | None, typer.Option(
    "--template", metavar="ID", help="Use this template instead of the emotion-based choice.")]


def _show(out: Output, result: ScheduleResult) -> None:
    if out.json_mode:
        out.json(result.to_json())
        return
    if result.status == "duplicate":
        out.line(f"duplicate: {result.trigger_type} follow-up {result.id} is already pending "
                 f"for user {result.user_id} (nothing scheduled)", style="yellow")
        return
    out.fields([
        ("status", result.status),
        ("id", result.id),
        ("user", result.user_id),
        ("conversation", result.conversation_id or "-"),
        ("type", result.trigger_type),
        ("scheduled at", result.scheduled_at),
        ("template", result.template_id),
        ("emotion mean", "no scores" if result.emotion_mean is None else result.emotion_mean),
    ])
    for warning in result.warnings:
        typer.echo(f"followup: warning: {warning}", err=True)


@app.command("post-event")
def post_event(
    user_id: UserOpt,
    conversation_id: Annotated[str, typer.Option(
        "--conversation-id", metavar="CONV",
        help="Conversation whose last 5 emotion scores choose the template (need not exist "
             "yet).")],
    event_date: Annotated[str, typer.Option(
        "--event-date", metavar="TIME",
        help="When the event happens, ISO 8601; without an offset it is read in "
             "SCHEDULER_TIMEZONE.")],
    booking_id: Annotated[str | None, typer.Option("--booking-id", metavar="ID",
                                                   help="For the {booking_id} placeholder.")
                          ] = None,
    custom_message: Annotated[str | None, typer.Option(
        "--custom-message", metavar="TEXT",
        help="For the {custom_message} placeholder (at most 2,000 characters).")] = None,
    delay_hours: Annotated[float | None, typer.Option(
        "--delay-hours", metavar="HOURS", min=0, max=MAX_DELAY_HOURS, callback=finite,
        help="Elapsed hours after the event [default: FOLLOWUP_DELAY_HOURS, 24].")] = None,
    template: TemplateOpt = None,
    json: JsonOpt = False,
) -> None:
    """Schedule a follow-up FOLLOWUP_DELAY_HOURS (24) after an event.

    A pending post-event follow-up of the same user within ±1 day of the event makes this a
    duplicate: nothing is scheduled, the existing id is reported, exit 0. A user at the
    per-user cap gets nothing (exit 3).

    Example:

        followup schedule post-event --user-id u42 --conversation-id c7 --event-date 2026-11-14T18:00
    """
    out = output(json)
    from followup_cli.service.requests import post_event_request
    from followup_cli.service.scheduling import schedule_post_event

    ctx = context()
    request = post_event_request(
        ctx.settings.timezone, user_id=user_id, conversation_id=conversation_id,
        event_date=event_date, booking_id=booking_id, custom_message=custom_message,
        delay_hours=delay_hours, template_id=template)
    _show(out, schedule_post_event(ctx, request))


@app.command("reengagement")
def reengagement(
    user_id: UserOpt,
    conversation_id: Annotated[str | None, typer.Option(
        "--conversation-id", metavar="CONV",
        help="Conversation for the template [default: the user's most recent].")] = None,
    days_inactive: Annotated[int | None, typer.Option(
        "--days-inactive", metavar="DAYS", min=0, max=MAX_DAYS,
        help="For {days_inactive} [default: days since the user's last message].")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", metavar="TIME", help="When to send, ISO 8601 [default: now].")] = None,
    template: TemplateOpt = None,
    json: JsonOpt = False,
) -> None:
    """Schedule a re-engagement message for one user.

    At most one per user is pending, and one per inactivity period: if the user was already
    re-engaged since their last message, this is a duplicate (exit 0, existing id).

    Example:

        followup schedule reengagement --user-id u42 --at 2026-12-01T09:00
    """
    out = output(json)
    from followup_cli.service.requests import reengagement_request
    from followup_cli.service.scheduling import schedule_reengagement

    ctx = context()
    request = reengagement_request(
        ctx.settings.timezone, user_id=user_id, conversation_id=conversation_id,
        days_inactive=days_inactive, at=at, template_id=template)
    _show(out, schedule_reengagement(ctx, request))


def _show_cancel(out: Output, result: CancelResult) -> None:
    if out.json_mode:
        out.json(result.to_json())
        return
    if not result.outcomes:
        out.line("nothing to cancel: no pending follow-ups matched")
    for o in result.outcomes:
        text = {
            "cancelled": f"cancelled {o.id}",
            "already_cancelled": f"{o.id} was already cancelled",
            "not_found": f"{o.id}: no such follow-up",
            "not_cancellable": f"{o.id}: cannot cancel, it is {o.status}",
        }[o.outcome]
        out.line(text, style=None if o.exit_code == 0 else "red")


def cancel(
    ids: Annotated[list[str] | None, typer.Argument(
        metavar="[ID]...", show_default=False,
        help="Follow-up ids to cancel (or unique prefixes of at least 8 characters).")
    ] = None,
    user_id: Annotated[str | None, typer.Option(
        "--user-id", metavar="USER", help="Cancel every pending follow-up of this user.")
    ] = None,
    trigger_type: TriggerTypeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Cancel pending follow-ups by id, or all of one user's.

    An id may be shortened to a unique prefix of at least 8 characters; an ambiguous prefix
    exits 2 listing the ids it starts, and nothing is cancelled. --trigger-type goes with
    --user-id. Cancelling one that is already cancelled succeeds. An unknown id exits 2; one that was
    executed, failed or is being delivered right now cannot be cancelled (exit 3). With
    several ids each is handled and the exit code is the highest of theirs.

    Example:

        followup cancel 5f0c6d1e-8a8f-4c1e-9f59-2f7d0c6f1b2a

        followup cancel --user-id u42 --trigger-type reengagement
    """
    out = output(json)
    from followup_cli.errors import InputError
    from followup_cli.service.ids import resolve_ids
    from followup_cli.service.requests import require_id
    from followup_cli.service.scheduling import cancel_ids, cancel_user

    if user_id is not None and ids:
        raise InputError("give follow-up ids or --user-id, not both")
    if trigger_type is not None and user_id is None:
        raise InputError("--trigger-type goes with --user-id")
    ctx = context()
    if user_id is not None:
        result = cancel_user(ctx, require_id("user_id", user_id),
                             None if trigger_type is None else trigger_type.value)
    else:
        result = cancel_ids(ctx, resolve_ids(ctx, list(ids or [])) if ids else [])
    _show_cancel(out, result)
    exit_with(result.exit_code)


def register(root: typer.Typer) -> None:
    root.command("cancel")(cancel)

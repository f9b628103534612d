"""`followup run-due`: one delivery pass, what cron runs every minute."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from followup_cli.cli.common import JsonOpt, output, settings

if TYPE_CHECKING:
    from followup_cli.cli.output import Output
    from followup_cli.service.delivery import PassResult


def _show(out: Output, result: PassResult) -> None:
    if out.json_mode:
        out.json(result.to_json())
        return
    from followup_cli.service.senders import encode

    # The log sender's channel: one JSON line per delivery on stdout, even under cron.
    for delivery in result.deliveries:
        out.stream.write(encode(delivery).decode("utf-8") + "\n")
    out.stream.flush()
    if result.dry_run:
        _show_dry_run(out, result)
        return
    from followup_cli.cli.pass_report import show_run_due

    show_run_due(out, result)  # quiet under cron unless something needs a look


def _show_dry_run(out: Output, result: PassResult) -> None:
    state = "open" if result.window_open else "closed: nothing would be sent now"
    out.line(f"due now: {result.due} (send window {state}); nothing was changed")
    if result.due and len(result.preview) < result.due:
        out.line(f"the first {len(result.preview)}, in delivery order:")
    if result.preview:
        out.table(["id", "user", "type", "template", "scheduled at", "next attempt", "retries"],
                  [[p["id"], p["user_id"], p["trigger_type"], p["template_id"],
                    p["scheduled_at"], p["next_attempt_at"], p["retry_count"]]
                   for p in result.preview])


def run_due(
    batch_size: Annotated[str | None, typer.Option(
        "--batch-size", metavar="N",
        help="Follow-ups claimed per database round trip, 1-10000 [default: 100; fewer "
             "when the lease would not cover them].")] = None,
    limit: Annotated[str | None, typer.Option(
        "--limit", metavar="N", help="Deliver at most N follow-ups in this pass.")] = None,
    concurrency: Annotated[str | None, typer.Option(
        "--concurrency", metavar="N",
        help="Sends in parallel (threads), 1-64 [default: 1]; claims and write-backs stay "
             "batched.")] = None,
    time_budget: Annotated[str | None, typer.Option(
        "--time-budget", metavar="SECONDS",
        help="Stop claiming after this long and finish what is held, so a pass ends "
             "before the next cron tick [default: 50].")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what is due and change nothing.")] = False,
    sender: Annotated[str | None, typer.Option(
        "--sender", metavar="SPEC",
        help="log | file:PATH | webhook:URL | command:CMD (env FOLLOWUP_SENDER).")] = None,
    json: JsonOpt = False,
) -> None:
    """Deliver the follow-ups that are due: one pass, for cron every minute.

    Claims due follow-ups in batches under a lease (FOLLOWUP_LEASE_SECONDS), sends each
    through FOLLOWUP_SENDER, and records the outcome: executed, retried later with
    exponential backoff, or failed after FOLLOWUP_MAX_RETRIES. Any number of passes may
    run at once on any number of hosts; a follow-up held by a pass that died is delivered
    again once its lease expires. Outside FOLLOWUP_SEND_WINDOW nothing is sent (the due
    ones are reported as deferred). Without a terminal the pass prints nothing unless a
    delivery failed or will be retried; the log sender prints each delivery as a JSON line.
    Exit 0 also when deliveries failed (they are recorded); 4 when the database cannot be
    used.

    Example:

        followup run-due --sender webhook:https://api.example.com/followups

        followup run-due --dry-run

        followup run-due --concurrency 8 --json
    """
    out = output(json)
    from followup_cli.service.delivery import pass_options, run_due_for

    options = pass_options(batch_size=batch_size, limit=limit, concurrency=concurrency,
                           time_budget=time_budget, dry_run=dry_run)
    _show(out, run_due_for(settings(FOLLOWUP_SENDER=sender), options))


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    root.command("run-due")(run_due)

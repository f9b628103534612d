"""`followup run-due`: one delivery pass, what cron runs every minute."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from followup_cli.cli.common import JsonOpt, output, positive, settings, warn_if_embedded

# Spelled here so that --help does not import the engine (a test holds them equal to
# followup_cli.service.delivery's MAX_BATCH and MAX_CONCURRENCY).
MAX_BATCH = 10_000
MAX_CONCURRENCY = 64
MAX_TIME_BUDGET = 86_400.0

if TYPE_CHECKING:
    from followup_cli.cli.output import Output
    from followup_cli.service.delivery import PassResult


def _show(out: Output, result: PassResult) -> None:
    if out.json_mode:
        out.json(result.to_json())
        return
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
    batch_size: Annotated[int, typer.Option(
        "--batch-size", metavar="N", min=1, max=MAX_BATCH,
        help="The most follow-ups one claim takes, 1-10000; slow senders claim about a "
             "second of work at a time.")] = 1000,
    limit: Annotated[int | None, typer.Option(
        "--limit", metavar="N", min=1, help="Deliver at most N follow-ups in this pass.")
    ] = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", metavar="N", min=1, max=MAX_CONCURRENCY,
        help="Sends in parallel (threads), 1-64; claims and write-backs stay batched.")] = 1,
    time_budget: Annotated[float, typer.Option(
        "--time-budget", metavar="SECONDS", max=MAX_TIME_BUDGET, callback=positive,
        help="No claim and no new send after this long; unsent claims go back to pending, "
             "so a pass ends within it plus one send's deadline.")] = 50.0,
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
    SIGTERM or SIGINT (Ctrl-C) stops it gracefully: no more claims or sends, the sends in
    flight finish within their deadline, every outcome is written back and the unsent
    claims go back to pending at once; exit 143 or 130. Exit 0 also when deliveries failed
    (they are recorded); 4 when the database cannot be used.

    Example:

        followup run-due --sender webhook:https://api.example.com/followups

        followup run-due --dry-run

        followup run-due --concurrency 8 --json
    """
    out = output(json)
    from followup_cli.cli.signals import stop_on_signals
    from followup_cli.service.delivery import PassOptions, run_due_for

    options = PassOptions(batch_size=batch_size, limit=limit, concurrency=concurrency,
                          time_budget=time_budget, dry_run=dry_run)
    current = settings(FOLLOWUP_SENDER=sender)
    warn_if_embedded(current)
    # The log sender's channel is stdout: one JSON line per delivery as it is made (with
    # --json, the deliveries go into the one document instead).
    with out.progress("delivering") as progress, stop_on_signals() as stop:
        result = run_due_for(current, options, progress=progress, stop=stop,
                             log_stream=None if json else out.stream)
    _show(out, result)
    if result.signal is not None:
        raise typer.Exit(128 + result.signal)


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    root.command("run-due")(run_due)

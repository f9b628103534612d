"""What a pass prints, so that cron speaks only when it should.

Without a terminal (cron, systemd, a pipe) a pass prints nothing when all is well: an idle
or clean pass, a disabled scheduler, a closed send window. When something needs a look it
prints exactly that, and cron's MAILTO (or deploy/followup-cron) mails it:
- one line per follow-up that failed for good in this pass (each fails for good once, so
  these never repeat), and one line counting any beyond those the pass listed;
- a retry summary, grouped by error kind, only when it is news (service/retry_summaries.py:
  the first in an hour, or a new error kind), so an outage does not mail every minute.
On a terminal a person asked: the counts and every problem, every time.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from followup_cli.cli.output import Output
    from followup_cli.service.delivery import PassResult
    from followup_cli.service.scanning import ScanResult

MAX_ERROR_CHARS = 300
RELEASED_KIND = "handed back unsent"


def one_line(text: Any) -> str:
    """An error text as one bounded line (a command's stderr may hold several)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= MAX_ERROR_CHARS else flat[:MAX_ERROR_CHARS - 1] + "…"


def failed_line(problem: dict[str, Any]) -> str:
    attempts = int(problem["retry_count"])
    return (f"failed: {problem['id']} after {attempts} attempt{'s' * (attempts != 1)}: "
            f"{one_line(problem['error'])}")


def show_run_due(out: Output, result: PassResult) -> None:
    """The human part of a run-due pass (the caller has printed --json and deliveries)."""
    if out.terminal:
        _show_terminal(out, result)
        return
    if result.disabled or not (result.failed or result.retried or result.released):
        return
    failed = [p for p in result.problems if p["status"] == "failed"]
    for problem in failed:
        out.line(failed_line(problem))
    if result.failed > len(failed):
        out.line(f"failed: {result.failed - len(failed)} more follow-ups failed for good "
                 "(followup list --status failed)")
    summary = _retry_summary(result)
    if summary and _is_news(result, summary):
        for line in dict.fromkeys(summary.values()):
            out.line(line)
    out.stream.flush()


def _retry_summary(result: PassResult) -> dict[str, str]:
    """Error kind -> the line that says it, for retries and follow-ups handed back."""
    from followup_cli.service.retry_summaries import error_kind

    lines: dict[str, str] = {}
    if result.retried:
        kinds = Counter(error_kind(str(p["error"])) for p in result.problems
                        if p["status"] != "failed")
        listed = ", ".join(f"{kind}: {n}" for kind, n in kinds.most_common())
        unlisted = result.retried - sum(kinds.values())
        if unlisted > 0:
            listed += (", " if listed else "") + f"not listed: {unlisted}"
            kinds["not listed"] = unlisted
        line = (f"retrying: {result.retried} follow-ups will be retried ({listed}); said "
                "again in an hour, or sooner if the error changes")
        lines.update(dict.fromkeys(sorted(kinds), line))
    if result.released:
        lines[RELEASED_KIND] = (
            f"released: {result.released} claimed follow-ups were handed back unsent, the "
            "lease would not cover their sends (lower --batch-size or raise --concurrency)")
    return lines


def _is_news(result: PassResult, summary: dict[str, str]) -> bool:
    from followup_cli.cli.common import context
    from followup_cli.errors import FollowupError
    from followup_cli.service.retry_summaries import summary_is_news

    if result.run_id is None:
        return True
    ctx = context()
    try:
        return summary_is_news(ctx, str(result.run_id), list(summary))
    except FollowupError:
        return True  # unsure: better one mail too many than a silent outage
    finally:
        ctx.close()


def _show_terminal(out: Output, result: PassResult) -> None:
    if result.disabled:
        out.line("scheduler disabled (SCHEDULER_ENABLED=false): nothing delivered",
                 style="yellow")
        return
    if not result.window_open:
        out.line(f"outside the send window: {result.deferred} due follow-ups wait for it",
                 style="yellow")
    out.fields([(key, value) for key, value in result.counts.items()
                if key not in ("recovered", "released") or value], title="run-due")
    for problem in result.problems:
        when = (f", next attempt {problem['next_attempt_at']}"
                if problem["next_attempt_at"] else "")
        out.line(f"{problem['status']}: {problem['id']} (attempt {problem['retry_count']}): "
                 f"{one_line(problem['error'])}{when}",
                 style="red" if problem["status"] == "failed" else "yellow")


def show_scan(out: Output, result: ScanResult) -> None:
    """The human part of a scan-inactive pass: a summary on a terminal (and for a dry run,
    which asked for it), nothing under cron when it worked (a failure is an error line and
    a non-zero exit)."""
    if not out.terminal and not result.dry_run:
        return
    if not result.enabled:
        out.line("scheduler disabled (SCHEDULER_ENABLED=false): nothing scanned")
        return
    verb = "would schedule" if result.dry_run else "scheduled"
    out.line(f"scan-inactive: {result.candidates} users inactive "
             f"{result.inactive_days}+ days without a re-engagement this period; "
             f"{verb} {result.scheduled}, skipped {result.skipped_cap} at the per-user cap"
             + (f", {result.skipped_limit} left by --limit" if result.skipped_limit else "")
             + (f", {result.skipped_conflict} already had one" if result.skipped_conflict
                else ""))
    if result.sample:
        out.table(["user", "days inactive", "conversation", "template", "emotion mean"],
                  [(s.user_id, s.days_inactive, s.conversation_id, s.template_id,
                    s.emotion_mean) for s in result.sample],
                  title="sample" if result.scheduled > len(result.sample) else None)

"""When a run-due pass under cron should print its retry summary.

An outage makes every pass retry something, and a line every minute would mail every
minute. A pass prints the summary only when it is news: no pass printed one within
SUMMARY_WINDOW, or this pass met an error kind that none of those summaries named. So an
outage mails when it starts, when its error changes, and once an hour while it lasts. The
decision is stored in the pass's run record (followup_runs), so every host sees it; two
hosts deciding in the same instant may both print.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from followup_cli.service.context import Context
from followup_cli.store import retry_summaries

SUMMARY_WINDOW = timedelta(hours=1)
RUN_KIND = "run-due"


def error_kind(message: str) -> str:
    """What stays the same between two failures of one cause: the text before its first
    detail ("webhook unreachable: [Errno 111] ..." -> "webhook unreachable")."""
    head = " ".join(message.split()).split(": ", 1)[0]
    return head[:80] or "unknown error"


def summary_is_news(ctx: Context, run_id: str, kinds: Sequence[str]) -> bool:
    """True when the pass `run_id` should print a summary naming `kinds`; then the run
    record remembers it."""
    wanted = sorted(set(kinds))
    now = ctx.now()
    with ctx.db.statements() as conn:
        said = retry_summaries.said_since(conn, now - SUMMARY_WINDOW, kind=RUN_KIND,
                                          exclude_run=run_id)
        known = {k for summary in said for k in summary}
        news = not said or not set(wanted) <= known
        if news:
            retry_summaries.mark_said(conn, run_id, wanted)
    return news

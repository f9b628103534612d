"""`retry --failed`: retry every failed follow-up that matches, however many.

The ids are selected page by page (by id, so each is seen once) and each page goes through
the very `retry` that `retry ID...` uses, so the cap and duplicate rules are the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from followup_cli.db.schema import TRIGGER_TYPES
from followup_cli.errors import ExitCode, InputError
from followup_cli.service.context import Context
from followup_cli.service.maintenance import RetryResult, retry
from followup_cli.service.outcomes import IdOutcome
from followup_cli.service.requests import optional_id
from followup_cli.store import lookup
from followup_cli.timeutil import iso, parse_instant

log = logging.getLogger("followup.retry")

PAGE = 200  # ids per retry call: one short transaction each
REFUSED_SHOWN = 100  # refused ones listed in the result; the counts are always exact
# Changed by someone else between the selection and the retry (retried, cancelled, deleted
# meanwhile): nothing to do, and no reason for a non-zero exit.
CHANGED_MEANWHILE = ("not_found", "not_failed")


@dataclass
class BulkRetryResult:
    matched: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # per outcome
    refused: list[IdOutcome] = field(default_factory=list)  # the first REFUSED_SHOWN
    due_at: datetime | None = None

    @property
    def retried(self) -> int:
        return self.counts.get("retried", 0)

    @property
    def exit_code(self) -> ExitCode:
        """3 when a rule refused one (as `retry ID` would), else 0."""
        return max((o.exit_code for o in self.refused), default=ExitCode.OK)

    def add(self, page: RetryResult) -> None:
        self.due_at = self.due_at or page.due_at
        for outcome in page.outcomes:
            self.matched += 1
            self.counts[outcome.outcome] = self.counts.get(outcome.outcome, 0) + 1
            if outcome.outcome != "retried" and outcome.outcome not in CHANGED_MEANWHILE \
                    and len(self.refused) < REFUSED_SHOWN:
                self.refused.append(outcome)

    def to_json(self) -> dict[str, Any]:
        return {"matched": self.matched, "retried": self.retried, "due_at": iso(self.due_at),
                "counts": self.counts, "refused": [o.to_json() for o in self.refused],
                "exit_code": int(self.exit_code)}


def retry_failed(ctx: Context, *, user_id: str | None = None, trigger_type: str | None = None,
                 since: str | None = None, page: int = PAGE) -> BulkRetryResult:
    """Put every failed follow-up that matches back to pending, due now, under the rules
    of `retry` (per-user cap, ±1-day duplicates, one live re-engagement). `since` keeps
    those that failed (last attempt) at or after that time (ISO 8601, naive times in the
    scheduler zone)."""
    if trigger_type is not None and trigger_type not in TRIGGER_TYPES:
        raise InputError(f"trigger_type: {trigger_type!r} is not one of "
                         f"{', '.join(TRIGGER_TYPES)}")
    user = optional_id("user_id", user_id)
    start = None if since is None else parse_instant(since, ctx.settings.timezone,
                                                     name="since")
    if page < 1:
        raise InputError("page size must be at least 1")
    result = BulkRetryResult()
    after: str | None = None
    while True:
        with ctx.db.transaction(readonly=True) as conn:
            ids = lookup.failed_ids(conn, user_id=user, trigger_type=trigger_type,
                                    since=start, after=after, limit=page)
        if not ids:
            break
        after = ids[-1]
        result.add(retry(ctx, ids))
    log.info("retry --failed: %d of %d matching put back to pending", result.retried,
             result.matched)
    return result

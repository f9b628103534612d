"""`cleanup` (retention), `retry` and `forget-user` (right to be forgotten)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from followup_cli.db.schema import CANCELLED, EXECUTED, FAILED, PENDING, POST_EVENT, PROCESSING
from followup_cli.db.states import LIVE
from followup_cli.errors import ExitCode, InputError, RuleViolation
from followup_cli.service.admission import ADMITTED, AT_CAP, DUPLICATE, Admission
from followup_cli.service.context import Context
from followup_cli.service.outcomes import IdOutcome, IdOutcomes
from followup_cli.service.requests import require_id
from followup_cli.settings import MAX_DAYS
from followup_cli.store import admission as admission_store
from followup_cli.store import followups, maintenance
from followup_cli.timeutil import iso

log = logging.getLogger("followup.maintenance")

DEFAULT_RETENTION_DAYS = 90  # the guide's "keep 90 days"
BATCH = 1000  # rows per delete transaction: short locks however large the clean-up

# Asked before deleting anything, with the counts; False aborts. Lets one service call
# cover count → confirm → delete while the CLI owns the question.
Confirm = Callable[[dict[str, int]], bool]


# --- cleanup ----------------------------------------------------------------------------

@dataclass
class CleanupResult:
    cutoff: datetime
    older_than_days: float
    kinds: list[str]
    dry_run: bool
    # executed / failed / cancelled / runs (and conversations / messages with conversation
    # retention): found (dry run) or deleted
    counts: dict[str, int]
    batches: int = 0
    aborted: bool = False
    conversations_older_than_days: float | None = None
    conversations_cutoff: datetime | None = None
    conversations_kept_live: int = 0  # expired, but a live follow-up points at them
    warnings: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "aborted": self.aborted, "cutoff": iso(self.cutoff),
                "older_than_days": self.older_than_days, "kinds": self.kinds,
                "counts": self.counts, "total": self.total, "batches": self.batches,
                "conversations_older_than_days": self.conversations_older_than_days,
                "conversations_cutoff": iso(self.conversations_cutoff),
                "conversations_kept_live": self.conversations_kept_live,
                "warnings": self.warnings}


def _days(what: str, days: float) -> float:
    if not 0 <= days <= MAX_DAYS:  # also refuses NaN and infinity
        raise InputError(f"{what}: {days:g} days must be from 0 to {MAX_DAYS}")
    return days


def cleanup(ctx: Context, *, older_than_days: float = DEFAULT_RETENTION_DAYS,
            include_failed: bool = False, include_cancelled: bool = False,
            conversations_older_than_days: float | None = None,
            dry_run: bool = False, confirm: Confirm | None = None,
            batch: int = BATCH,
            progress: Callable[[int, int | None], None] | None = None) -> CleanupResult:
    """Delete executed follow-ups (and optionally failed and cancelled ones) that ended more
    than `older_than_days` ago, and run records as old, in batches of `batch` rows per
    transaction. Executed rows go by executed_at, failed by their last attempt, cancelled
    by cancelled_at.

    With `conversations_older_than_days`, also conversations whose last message (or, with
    none, their creation) is older, with their messages, `batch` conversations per
    transaction. A conversation a live (pending or in-flight) follow-up points at is kept
    (and counted) until that follow-up has ended: its receiver may open the conversation."""
    _days("retention", older_than_days)
    if conversations_older_than_days is not None:
        _days("conversation retention", conversations_older_than_days)
    if batch < 1:
        raise InputError("batch size must be at least 1")
    now = ctx.now()
    cutoff = now - timedelta(days=older_than_days)
    conv_cutoff = (None if conversations_older_than_days is None
                   else now - timedelta(days=conversations_older_than_days))
    kinds = [EXECUTED] + ([FAILED] if include_failed else []) + (
        [CANCELLED] if include_cancelled else [])
    kept_live = 0
    with ctx.db.transaction(readonly=True) as conn:
        found = {k: maintenance.count_expired(conn, k, cutoff) for k in kinds}
        found["runs"] = maintenance.count_runs_finished_before(conn, cutoff)
        if conv_cutoff is not None:
            conv_counts = maintenance.count_expired_conversations(conn, conv_cutoff)
            kept_live = conv_counts.pop("kept_live")
            found.update(conv_counts)
    result = CleanupResult(cutoff, older_than_days, kinds, dry_run, found,
                           conversations_older_than_days=conversations_older_than_days,
                           conversations_cutoff=conv_cutoff, conversations_kept_live=kept_live)
    if (conversations_older_than_days is not None
            and conversations_older_than_days <= ctx.settings.inactive_days):
        result.warnings.append(
            f"a conversation retention of {conversations_older_than_days:g} days is not "
            f"more than REENGAGEMENT_INACTIVE_DAYS ({ctx.settings.inactive_days}): users inactive "
            "that long lose their history before scan-inactive can re-engage them")
    if dry_run or result.total == 0:
        return result
    if confirm is not None and not confirm(found):
        result.aborted = True
        result.counts = dict.fromkeys(found, 0)
        return result
    deleted = dict.fromkeys(found, 0)
    for kind in [*kinds, "runs"]:
        while True:
            with ctx.db.transaction() as conn:
                if kind == "runs":
                    n = maintenance.delete_runs_batch(conn, cutoff, batch)
                else:
                    n = maintenance.delete_expired_batch(conn, kind, cutoff, batch)
            if not n:  # not `n < batch`: rows locked elsewhere make a batch short
                break
            result.batches += 1
            deleted[kind] += n
            if progress is not None:
                progress(sum(deleted.values()), result.total)
    after: str | None = None  # keyset: a conversation kept this run is not tried again
    while conv_cutoff is not None:
        with ctx.db.transaction() as conn:
            conversations, messages, after = maintenance.delete_expired_conversations_batch(
                conn, conv_cutoff, batch, after)
        if after is None:
            break
        result.batches += 1
        deleted["conversations"] += conversations
        deleted["messages"] += messages
        if progress is not None:
            progress(sum(deleted.values()), result.total)
    result.counts = deleted
    log.info("cleanup deleted %s in %d batches (cutoff %s)", deleted, result.batches,
             iso(cutoff))
    return result


# --- retry ------------------------------------------------------------------------------

@dataclass
class RetryResult(IdOutcomes):
    """Outcomes: retried | not_found | not_failed | live_reengagement | period_closed |
    at_cap | duplicate_pending."""

    due_at: datetime | None = None

    @property
    def retried(self) -> list[str]:
        return self.ids("retried")

    def to_json(self) -> dict[str, Any]:
        return {"retried": len(self.retried), "due_at": iso(self.due_at), **super().to_json()}


def retry(ctx: Context, ids: list[str]) -> RetryResult:
    """Put failed follow-ups back to pending, due now, through the one admission path, so a
    retry is held to the scheduling rules: it may not take its user past
    FOLLOWUP_MAX_PENDING_PER_USER (`at_cap`), duplicate a live post-event within the window
    (`duplicate_pending`), or re-engage a user whose inactivity period is closed
    (`live_reengagement` when a live one closes it, `period_closed` when another one was
    created since the user's last activity); each of those exits 3, like one that is not
    failed. Ids are admitted in the order given, exactly as if retried one at a time. An
    unknown id exits 2; with several ids the highest code wins (like cancel)."""
    if not ids:
        raise InputError("give at least one follow-up id")
    unique = list(dict.fromkeys(require_id("follow-up id", i) for i in ids))
    now = ctx.now()
    refused: dict[str, str] = {}
    with ctx.db.transaction() as conn:
        # Their users' guard rows first, then the rows as they are now: a retry, booking
        # or forget-user of those users that got there first has committed (read before
        # the lock, a row retried meanwhile counted against its own user's cap).
        users = {r["user_id"] for r in maintenance.failed_rows(conn, unique)}
        admission_store.lock_users(conn, sorted(users))
        failed = maintenance.failed_rows(conn, unique)
        order = {fid: n for n, fid in enumerate(unique)}
        admission = Admission(conn, cap=ctx.settings.max_pending_per_user)
        admission.add([{**row, "seq": order[row["id"]]} for row in failed])
        admission.admit(requeue_at=now)
        admitted = {r["id"] for r in admission.decided(ADMITTED)}
        refused.update((r["id"], "at_cap") for r in admission.decided(AT_CAP))
        duplicates = admission.decided(DUPLICATE)
        live = followups.statuses(conn, [d["existing_id"] for d in duplicates])
        for dup in duplicates:
            if dup["trigger_type"] == POST_EVENT:
                refused[dup["id"]] = "duplicate_pending"
            elif live.get(dup["existing_id"]) in LIVE:
                refused[dup["id"]] = "live_reengagement"
            else:
                refused[dup["id"]] = "period_closed"
        states = followups.statuses(conn, unique)
    # Retried: admitted and pending now. A row deleted meanwhile by a writer that takes no
    # guard (cleanup --include-failed) was admitted but not put back: it is not_found.
    done = {fid for fid in admitted if states.get(fid) == PENDING}
    outcomes = []
    for fid in unique:
        state = states.get(fid)
        if fid in done:
            outcomes.append(IdOutcome(fid, "retried", PENDING, ExitCode.OK))
        elif state is None:
            outcomes.append(IdOutcome(fid, "not_found", None, ExitCode.INVALID))
        else:
            outcomes.append(IdOutcome(fid, refused.get(fid, "not_failed"), state,
                                      ExitCode.REFUSED))
    log.info("retry: %d of %d put back to pending", len(done), len(unique))
    return RetryResult(outcomes, now)


# --- forget-user ------------------------------------------------------------------------

@dataclass
class ForgetResult:
    user_id: str
    counts: dict[str, int] = field(default_factory=dict)  # deleted per table
    aborted: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "aborted": self.aborted, "deleted": self.counts,
                "total": self.total}


def forget_user(ctx: Context, user_id: str, *, confirm: Confirm | None = None) -> ForgetResult:
    """Delete every follow-up, message and conversation of a user, and the user's guard
    row, in one transaction.

    A follow-up held by a pass that died (its lease has expired) is simply deleted with the
    rest: nothing will deliver it. One held by a live pass refuses the command (exit 3):
    deleting it would not stop that delivery; the message says when the hold ends. No
    message names the user: error output ends up in logs."""
    user_id = require_id("user_id", user_id)
    with ctx.db.transaction(readonly=True) as conn:
        found = maintenance.count_user_data(conn, user_id)
    if sum(found.values()) == 0:
        # Nothing to confirm, but the guard row still names the user (its follow-ups may
        # have gone with retention long ago).
        with ctx.db.transaction() as conn:
            admission_store.forget_guard(conn, user_id)
        return ForgetResult(user_id, found)
    if confirm is not None and not confirm(found):
        return ForgetResult(user_id, dict.fromkeys(found, 0), aborted=True)
    with ctx.db.transaction() as conn:
        admission_store.lock_users(conn, [user_id])  # no scheduling for this user meanwhile
        now = ctx.now()
        # A claim whose lease has expired (or that has none) belongs to a dead pass:
        # nothing will deliver it, so it goes with the rest.
        held = [r for r in maintenance.lock_user_followups(conn, user_id)
                if r["status"] == PROCESSING and r["locked_until"] is not None
                and r["locked_until"] >= now]
        if held:
            until = max(r["locked_until"] for r in held)
            raise RuleViolation(
                f"{len(held)} of the user's follow-ups are being delivered right now (held "
                f"until {until:%Y-%m-%d %H:%M:%S} UTC): nothing deleted; run forget-user "
                "again after that")
        deleted = maintenance.delete_user_data(conn, user_id)
        admission_store.forget_guard(conn, user_id)
    log.info("forget-user deleted %d follow-ups, %d messages, %d conversations",
             deleted["followups"], deleted["messages"], deleted["conversations"])
    return ForgetResult(user_id, deleted)

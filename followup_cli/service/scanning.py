"""scan-inactive: one re-engagement pass over every inactive user.

One candidate query under the exclusive scheduling lock, templates chosen from one batched
score query, then multi-row inserts that the unique live-re-engagement index guards. A
second pass that overlaps waits for the lock and then finds every user already closed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from followup_cli.errors import FollowupError, InputError
from followup_cli.service.context import Context
from followup_cli.service.scheduling import new_id, render_reengagement
from followup_cli.store import conversations, followups, locks, runs, scanning
from followup_cli.templates import TemplateSet
from followup_cli.timeutil import iso, whole_days

log = logging.getLogger("followup.scan")

RUN_KIND = "scan-inactive"
INSERT_BATCH = 2000
# Users per transaction: bounds how long the scheduling lock is held (a few seconds).
SCAN_BATCH = 20_000
SAMPLE_SIZE = 10

# (done, total): called after each inserted batch, so a terminal can show a progress bar.
Progress = Callable[[int, int], None]


@dataclass
class ScanOptions:
    dry_run: bool = False
    limit: int | None = None  # schedule at most this many (longest inactive first)
    user_ids: Sequence[str] | None = None  # only these users (the demo's own)


@dataclass
class ScanItem:
    user_id: str
    conversation_id: str
    days_inactive: int
    last_activity: datetime
    template_id: str
    emotion_mean: float | None
    id: str | None = None  # None in a dry run

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "user_id": self.user_id,
                "conversation_id": self.conversation_id,
                "days_inactive": self.days_inactive,
                "last_activity": iso(self.last_activity),
                "template_id": self.template_id, "emotion_mean": self.emotion_mean}


@dataclass
class ScanResult:
    enabled: bool = True
    dry_run: bool = False
    inactive_days: int = 30
    cutoff: datetime | None = None
    candidates: int = 0  # inactive users whose period has no re-engagement yet
    scheduled: int = 0  # inserted (or, in a dry run, that would be)
    skipped_cap: int = 0  # at FOLLOWUP_MAX_PENDING_PER_USER
    skipped_limit: int = 0  # left for the next pass by --limit
    skipped_conflict: int = 0  # re-engaged by an overlapping pass, or back, meanwhile
    run_id: str | None = None
    sample: list[ScanItem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled, "dry_run": self.dry_run,
            "inactive_days": self.inactive_days, "cutoff": iso(self.cutoff),
            "candidates": self.candidates, "scheduled": self.scheduled,
            "skipped_cap": self.skipped_cap, "skipped_limit": self.skipped_limit,
            "skipped_conflict": self.skipped_conflict, "run_id": self.run_id,
            "sample": [s.to_json() for s in self.sample],
        }

    def counts(self) -> dict[str, int]:
        return {"candidates": self.candidates, "scheduled": self.scheduled,
                "skipped_cap": self.skipped_cap, "skipped_limit": self.skipped_limit,
                "skipped_conflict": self.skipped_conflict}


def scan_inactive(ctx: Context, options: ScanOptions | None = None,
                  progress: Progress | None = None) -> ScanResult:
    """Schedule a re-engagement, due now, for every user inactive REENGAGEMENT_INACTIVE_DAYS
    or more whose current inactivity period has none yet."""
    options = options or ScanOptions()
    if options.limit is not None and options.limit < 0:
        raise InputError("--limit: must not be negative")
    settings = ctx.settings
    result = ScanResult(dry_run=options.dry_run, inactive_days=settings.inactive_days)
    if not settings.enabled:
        result.enabled = False
        log.info("scan-inactive: scheduler disabled (SCHEDULER_ENABLED=false), nothing done")
        return result
    templates = ctx.templates
    now = ctx.now()
    result.cutoff = now - timedelta(days=settings.inactive_days)
    if options.dry_run:
        _scan_batches(ctx, result, options, now, templates, None)
        return result

    run_id = new_id()
    result.run_id = run_id
    with ctx.db.transaction() as conn:
        runs.start(conn, run_id=run_id, kind=RUN_KIND, host=socket.gethostname(),
                   pid=os.getpid(), started_at=now)
    try:
        _scan_batches(ctx, result, options, now, templates, progress)
    except Exception as error:
        # Batches committed before the failure stay (a re-run skips their users). Recording
        # is best effort: when the database itself failed, the original error matters more.
        with contextlib.suppress(FollowupError), ctx.db.transaction() as conn:
            runs.finish(conn, run_id=run_id, finished_at=ctx.now(), status="failed",
                        counts=result.counts(), error_message=type(error).__name__)
        raise
    with ctx.db.transaction() as conn:
        runs.finish(conn, run_id=run_id, finished_at=ctx.now(), status="ok",
                    counts=result.counts())
    log.info("scan-inactive: %d candidates, %d scheduled, %d at cap, %d over limit",
             result.candidates, result.scheduled, result.skipped_cap, result.skipped_limit)
    return result


def _scan_batches(ctx: Context, result: ScanResult, options: ScanOptions, now: datetime,
                  templates: TemplateSet, progress: Progress | None) -> None:
    """One candidate query, then batches of SCAN_BATCH users, each one transaction under
    the exclusive scheduling lock, so single `schedule` commands wait for one batch at
    most. Under the lock each batch re-checks its users with index lookups (no per-user
    query): a user re-engaged by an overlapping pass, or back in the meantime, is skipped."""
    assert result.cutoff is not None
    with ctx.db.transaction(readonly=True) as conn:
        found = scanning.inactive_candidates(conn, result.cutoff, options.user_ids)
    result.candidates = len(found)
    for start in range(0, len(found), SCAN_BATCH):
        if options.limit is not None and result.scheduled >= options.limit:
            result.skipped_limit += len(found) - start
            return
        batch = found[start:start + SCAN_BATCH]
        if options.dry_run:
            with ctx.db.transaction(readonly=True) as conn:
                _plan(ctx, conn, result, options, now, templates, batch)
            continue
        inserted = 0
        with ctx.db.transaction() as conn:
            locks.lock_all_scheduling(conn)
            rows = _plan(ctx, conn, result, options, now, templates, batch)
            for first in range(0, len(rows), INSERT_BATCH):
                chunk = rows[first:first + INSERT_BATCH]
                ids = scanning.insert_reengagements(conn, chunk)
                result.skipped_conflict += len(chunk) - len(ids)
                inserted += len(ids)
                if progress is not None:
                    progress(start + first + len(chunk), len(found))
        result.scheduled += inserted  # committed
        if progress is not None:
            progress(start + len(batch), len(found))


def _plan(ctx: Context, conn: sa.Connection, result: ScanResult, options: ScanOptions,
          now: datetime, templates: TemplateSet, batch: list[scanning.Candidate]
          ) -> list[dict[str, Any]]:
    """Re-check one batch of candidates, add it to the counts and sample, and return the
    rows to insert."""
    assert result.cutoff is not None
    users = [c.user_id for c in batch]
    last = scanning.last_activity_many(conn, users)
    still = [c for c in batch if c.user_id in last and last[c.user_id] <= result.cutoff]
    closed = scanning.reengaged_since_many(conn, [c.user_id for c in still], last)
    fresh = [replace(c, last_activity=last[c.user_id]) for c in still
             if c.user_id not in closed]
    result.skipped_conflict += len(batch) - len(fresh)
    live = followups.count_live_many(conn, [c.user_id for c in fresh])
    cap = ctx.settings.max_pending_per_user
    chosen: list[scanning.Candidate] = []
    room = None if options.limit is None else options.limit - result.scheduled
    for cand in fresh:
        if live.get(cand.user_id, 0) >= cap:
            result.skipped_cap += 1
        elif room is not None and len(chosen) >= room:
            result.skipped_limit += 1
        else:
            chosen.append(cand)
    scores = conversations.recent_scores_many(conn, [c.conversation_id for c in chosen])
    rows: list[dict[str, Any]] = []
    for cand in chosen:
        days = whole_days(cand.last_activity, now)
        draft = render_reengagement(
            templates, user_id=cand.user_id, conversation_id=cand.conversation_id,
            days_inactive=days, at=now, template_id=None,
            scores=scores.get(cand.conversation_id, []), now=now)
        rows.append(draft.row)
        if len(result.sample) < SAMPLE_SIZE:
            result.sample.append(ScanItem(
                cand.user_id, cand.conversation_id, days, cand.last_activity,
                draft.row["template_id"], draft.emotion_mean,
                None if options.dry_run else draft.row["id"]))
    if options.dry_run:
        result.scheduled += len(rows)
    return rows

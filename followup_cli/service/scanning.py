"""scan-inactive: one re-engagement pass over every inactive user.

One candidate query, read as a stream; then batches of SCAN_BATCH users, each rendered
(templates chosen from one batched score query) and admitted in its own transaction by the
one admission path, which locks only that batch's users and re-checks each of them: a user
re-engaged by an overlapping pass, or back since the candidate query, is skipped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from followup_cli.errors import FollowupError, InputError
from followup_cli.service import runs as run_records
from followup_cli.service.admission import (
    ACTIVE,
    ADMITTED,
    AT_CAP,
    DUPLICATE,
    OVER_LIMIT,
    Admission,
    chunked,
)
from followup_cli.service.context import Context
from followup_cli.service.scheduling import new_id, render_reengagement
from followup_cli.store import conversations, runs, scanning
from followup_cli.templates import TemplateSet
from followup_cli.timeutil import iso, whole_days

log = logging.getLogger("followup.scan")

RUN_KIND = "scan-inactive"
# Users per transaction: bounds the memory and how long a batch's users' guards are held.
SCAN_BATCH = 20_000
SAMPLE_SIZE = 10

# (done, total): called after each batch, so a terminal can show a progress bar; the total
# is known only at the end (the candidates are streamed).
Progress = Callable[[int, int | None], None]


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
        raise InputError("limit: must not be negative")
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
        _scan_batches(ctx, result, options, now, templates, progress)
        return result

    run_id = new_id()
    result.run_id = run_id
    with ctx.db.transaction() as conn:
        # Closes the records of scans that died first, then records this one.
        run_records.begin(conn, run_id=run_id, kind=RUN_KIND, now=now)
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
    """Stream the candidates and admit them SCAN_BATCH at a time: memory and each
    transaction are bounded by the batch, and single `schedule` commands for other users
    never wait for the scan."""
    assert result.cutoff is not None
    with ctx.db.transaction(readonly=True) as reader:
        found = scanning.inactive_candidates(reader, result.cutoff, options.user_ids)
        seq = 0
        for batch in chunked(found, SCAN_BATCH):
            result.candidates += len(batch)
            if options.limit is not None and result.scheduled >= options.limit:
                result.skipped_limit += len(batch)
                continue
            with ctx.db.transaction(readonly=options.dry_run) as conn:
                _admit_batch(ctx, conn, result, options, now, templates, batch, seq)
            seq += len(batch)
            if progress is not None:
                progress(result.candidates, None)
    if progress is not None:
        progress(result.candidates, result.candidates)


def _admit_batch(ctx: Context, conn: sa.Connection, result: ScanResult,
                 options: ScanOptions, now: datetime, templates: TemplateSet,
                 batch: list[scanning.Candidate], first_seq: int) -> None:
    """Render one batch and admit it (a dry run decides without writing)."""
    assert result.cutoff is not None
    scores = conversations.recent_scores_many(conn, [c.conversation_id for c in batch])
    cutoff = result.cutoff
    items: list[ScanItem] = []

    def rows() -> Iterator[dict[str, Any]]:
        # rendered as the stage takes them (Admission.add)
        for offset, cand in enumerate(batch):
            days = whole_days(cand.last_activity, now)
            draft = render_reengagement(
                templates, user_id=cand.user_id, conversation_id=cand.conversation_id,
                days_inactive=days, at=now, template_id=None,
                scores=scores.get(cand.conversation_id, []), now=now)
            items.append(ScanItem(cand.user_id, cand.conversation_id, days,
                                  cand.last_activity, draft.row["template_id"],
                                  draft.emotion_mean,
                                  None if options.dry_run else draft.row["id"]))
            yield {**draft.row, "seq": first_seq + offset, "inactive_before": cutoff,
                   "last_activity": cand.last_activity}

    if result.run_id is not None:
        runs.heartbeat(conn, result.run_id, ctx.now())
    admission = Admission(conn, cap=ctx.settings.max_pending_per_user, seal=ctx.seal)
    admission.add(rows())
    room = None if options.limit is None else options.limit - result.scheduled
    summary = admission.admit(limit=room, dry_run=options.dry_run)
    result.scheduled += summary.count(ADMITTED)
    result.skipped_cap += summary.count(AT_CAP)
    result.skipped_limit += summary.count(OVER_LIMIT)
    result.skipped_conflict += summary.count(DUPLICATE) + summary.count(ACTIVE)
    wanted = SAMPLE_SIZE - len(result.sample)
    if wanted > 0:
        for row in admission.decided(ADMITTED, wanted):
            result.sample.append(items[row["seq"] - first_seq])

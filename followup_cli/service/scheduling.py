"""Scheduling and cancelling follow-ups: rendering (template, message) and single
admissions; the rules themselves are applied by the one admission path."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from followup_cli.db.states import (
    CANCELLED,
    EXECUTED,
    FAILED,
    PENDING,
    POST_EVENT,
    PROCESSING,
    REENGAGEMENT,
)
from followup_cli.errors import ExitCode, InputError, RuleViolation
from followup_cli.service.admission import AT_CAP, DUPLICATE, Admission
from followup_cli.service.context import Context
from followup_cli.service.outcomes import IdOutcome, IdOutcomes
from followup_cli.service.requests import PostEventRequest, ReengagementRequest, require_id
from followup_cli.store import admission as admission_store
from followup_cli.store import conversations
from followup_cli.store.executor import Sql
from followup_cli.templates import TemplateSet, choose_template, emotion_mean
from followup_cli.timeutil import after_elapsed, human_date, iso, whole_days

log = logging.getLogger("followup.schedule")


@dataclass
class ScheduleResult:
    status: str  # "scheduled" or "duplicate"
    id: str
    user_id: str
    trigger_type: str
    scheduled_at: datetime
    template_id: str | None
    emotion_mean: float | None = None
    conversation_id: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "id": self.id,
            "user_id": self.user_id,
            "conversation_id": self.conversation_id,
            "trigger_type": self.trigger_type,
            "scheduled_at": iso(self.scheduled_at),
            "template_id": self.template_id,
            "emotion_mean": self.emotion_mean,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class Draft:
    """A follow-up ready to insert: template chosen, message rendered and checked."""

    row: dict[str, Any]
    emotion_mean: float | None
    warnings: tuple[str, ...] = ()


def new_id() -> str:
    """A random (version 4) UUID as text: uuid.uuid4()'s bits, without building a UUID
    object per row (a third of the time, which an import of a million rows notices)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def render_post_event(ctx: Context, templates: TemplateSet, req: PostEventRequest,
                      scores: list[float], now: datetime) -> Draft:
    mean = emotion_mean(scores)
    template_id = req.template_id or choose_template(POST_EVENT, mean)
    template = templates.get(template_id)
    message = templates.render(template_id, {
        "event_date": human_date(req.event_at, ctx.settings.timezone),
        "booking_id": req.booking_id,
        "custom_message": req.custom_message,
    })
    warnings = []
    if req.custom_message and "custom_message" not in template.fields:
        warnings.append(f"template {template_id} has no {{custom_message}}: the custom "
                        "message is kept in trigger_data but not in the message")
    hours = ctx.settings.delay_hours if req.delay_hours is None else req.delay_hours
    scheduled_at = after_elapsed(req.event_at, hours)
    row = {
        "id": new_id(),
        "conversation_id": req.conversation_id,
        "user_id": req.user_id,
        "trigger_type": POST_EVENT,
        "trigger_data": {
            "event_date": iso(req.event_at),
            "booking_id": req.booking_id,
            "custom_message": req.custom_message,
            "delay_hours": hours,
        },
        "scheduled_at": scheduled_at,
        "next_attempt_at": scheduled_at,
        "status": PENDING,
        "template_id": template_id,
        "message_content": message,
        "created_at": now,
        "retry_count": 0,
        "event_at": req.event_at,
    }
    return Draft(row, mean, tuple(warnings))


def render_reengagement(templates: TemplateSet, *, user_id: str, conversation_id: str,
                        days_inactive: int, at: datetime, template_id: str | None,
                        scores: list[float], now: datetime) -> Draft:
    mean = emotion_mean(scores)
    chosen = template_id or choose_template(REENGAGEMENT, mean)
    message = templates.render(chosen, {"days_inactive": str(days_inactive)})
    row = {
        "id": new_id(),
        "conversation_id": conversation_id,
        "user_id": user_id,
        "trigger_type": REENGAGEMENT,
        "trigger_data": {"days_inactive": days_inactive},
        "scheduled_at": at,
        "next_attempt_at": at,
        "status": PENDING,
        "template_id": chosen,
        "message_content": message,
        "created_at": now,
        "retry_count": 0,
        "event_at": None,
    }
    return Draft(row, mean)


def days_inactive(ctx: Context, given: int | None, last_activity: datetime | None,
                  now: datetime) -> int:
    """{days_inactive} of a re-engagement: as given, else whole days since the user's last
    message, else (no message at all) REENGAGEMENT_INACTIVE_DAYS."""
    if given is not None:
        return given
    if last_activity is None:
        return ctx.settings.inactive_days
    return whole_days(last_activity, now)


def admit_one(ctx: Context, conn: Sql | Any, draft: Draft) -> ScheduleResult:
    """Admit one rendered follow-up (an admission of one row): scheduled, a duplicate of
    the follow-up it reports, or refused by the cap (RuleViolation, nothing written)."""
    row = draft.row
    admission = Admission(conn, cap=ctx.settings.max_pending_per_user, seal=ctx.seal)
    admission.add([{**row, "seq": 0}])
    summary = admission.admit()
    trigger_type = row["trigger_type"]
    if summary.count(AT_CAP):
        cap = ctx.settings.max_pending_per_user
        raise RuleViolation(
            f"the user already has {cap} pending follow-ups and the cap is {cap} "
            "(FOLLOWUP_MAX_PENDING_PER_USER): nothing scheduled")
    if summary.count(DUPLICATE):
        [dup] = admission.decided(DUPLICATE)
        existing = admission_store.existing(conn, dup["existing_id"]) or {}
        log.info("duplicate %s follow-up: %s", trigger_type, dup["existing_id"])
        return ScheduleResult("duplicate", dup["existing_id"], row["user_id"], trigger_type,
                              existing.get("scheduled_at", row["scheduled_at"]),
                              existing.get("template_id"),
                              conversation_id=existing.get("conversation_id"))
    log.info("scheduled %s follow-up: %s", trigger_type, row["id"])
    return ScheduleResult("scheduled", row["id"], row["user_id"], trigger_type,
                          row["scheduled_at"], row["template_id"], draft.emotion_mean,
                          row["conversation_id"], list(draft.warnings))


def schedule_post_event(ctx: Context, req: PostEventRequest) -> ScheduleResult:
    """Schedule one post-event follow-up, or report the pending one it duplicates."""
    templates = ctx.templates
    now = ctx.now()
    with ctx.db.statements() as conn:
        draft = render_post_event(ctx, templates, req,
                                  conversations.recent_scores(conn, req.conversation_id), now)
        return admit_one(ctx, conn, draft)


def schedule_reengagement(ctx: Context, req: ReengagementRequest) -> ScheduleResult:
    """Schedule one re-engagement, unless the user's current inactivity period already has
    one (then report that one as the duplicate)."""
    templates = ctx.templates
    now = ctx.now()
    with ctx.db.statements() as conn:
        last_active = conversations.last_activity(conn, req.user_id)
        conversation_id = req.conversation_id or conversations.latest_conversation(
            conn, req.user_id) or ""
        days = days_inactive(ctx, req.days_inactive, last_active, now)
        scores = conversations.recent_scores(conn, conversation_id) if conversation_id else []
        draft = render_reengagement(templates, user_id=req.user_id,
                                    conversation_id=conversation_id, days_inactive=days,
                                    at=req.at or now, template_id=req.template_id,
                                    scores=scores, now=now)
        return admit_one(ctx, conn, draft)


# --- cancelling ---------------------------------------------------------------------

class CancelResult(IdOutcomes):
    """Outcomes: cancelled | already_cancelled | not_found | not_cancellable."""

    @property
    def cancelled(self) -> list[str]:
        return self.ids("cancelled")

    def to_json(self) -> dict[str, Any]:
        return {"cancelled": len(self.cancelled), **super().to_json()}


def cancel_ids(ctx: Context, ids: list[str]) -> CancelResult:
    """Cancel pending follow-ups by id; each id gets its own outcome and exit code."""
    if not ids:
        raise InputError("give at least one follow-up id, or --user-id")
    from followup_cli.store import followups  # SQLAlchemy: not loaded for a booking

    unique = list(dict.fromkeys(require_id("follow-up id", i) for i in ids))
    now = ctx.now()
    with ctx.db.transaction() as conn:
        done = set(followups.cancel_pending(conn, unique, now))
        states = followups.statuses(conn, [i for i in unique if i not in done])
    outcomes = []
    for fid in unique:
        state = states.get(fid)
        if fid in done:
            outcomes.append(IdOutcome(fid, "cancelled", CANCELLED, ExitCode.OK))
        elif state == CANCELLED:
            outcomes.append(IdOutcome(fid, "already_cancelled", CANCELLED, ExitCode.OK))
        elif state is None:
            outcomes.append(IdOutcome(fid, "not_found", None, ExitCode.INVALID))
        else:  # executed, failed, or being delivered right now
            assert state in (EXECUTED, FAILED, PROCESSING)
            outcomes.append(IdOutcome(fid, "not_cancellable", state, ExitCode.REFUSED))
    return CancelResult(outcomes)


def cancel_user(ctx: Context, user_id: str, trigger_type: str | None) -> CancelResult:
    if trigger_type is not None and trigger_type not in (POST_EVENT, REENGAGEMENT):
        raise InputError(f"trigger type: {trigger_type!r} is not post_event or reengagement")
    from followup_cli.store import followups

    with ctx.db.transaction() as conn:
        done = followups.cancel_user(conn, user_id, trigger_type, ctx.now())
    return CancelResult([IdOutcome(i, "cancelled", CANCELLED, ExitCode.OK) for i in done])

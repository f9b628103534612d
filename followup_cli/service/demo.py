"""`followup demo`: the whole product end to end on a small, realistic data set.

Seven sample users (ids `demo-*`) with happy, neutral and unhappy conversations: three had
an event a day ago, three have been quiet for weeks, one wrote yesterday. The demo schedules
their follow-ups through the same code as `schedule import` and `scan-inactive`, runs one
delivery pass into an in-memory sender (nothing leaves the machine), and reports what was
sent and why. Each run first removes the previous run's `demo-*` rows, so it can be run
again and again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from followup_cli.errors import RuleViolation
from followup_cli.service.context import Context
from followup_cli.service.importing import ImportRow, import_rows
from followup_cli.service.requests import post_event_request
from followup_cli.service.scanning import ScanOptions, scan_inactive
from followup_cli.store import conversations, history
from followup_cli.templates import emotion_band, emotion_mean
from followup_cli.timeutil import iso

log = logging.getLogger("followup.demo")

PREFIX = "demo-"


@dataclass(frozen=True)
class DemoUser:
    name: str
    mood: str
    scores: tuple[float | None, ...]
    quiet_days: float  # days since the user's last message
    # A booking event whose follow-up fell due this many minutes ago (whatever
    # FOLLOWUP_DELAY_HOURS is): due now, and late by minutes, so `health` stays calm.
    due_minutes_ago: float | None = None

    @property
    def user_id(self) -> str:
        return PREFIX + self.name.lower()

    @property
    def conversation_id(self) -> str:
        return f"{PREFIX}conv-{self.name.lower()}"


USERS = (
    DemoUser("Ana", "happy", (0.8, 0.9, 0.85, 0.95), quiet_days=1, due_minutes_ago=3),
    DemoUser("Ben", "neutral", (0.5, 0.6, 0.45, 0.55), quiet_days=1.2, due_minutes_ago=8),
    DemoUser("Cleo", "unhappy", (0.3, 0.2, 0.15, 0.25), quiet_days=1.1, due_minutes_ago=5),
    DemoUser("Dev", "happy", (0.9, 0.75, 0.8), quiet_days=45),
    DemoUser("Eli", "unhappy", (0.35, 0.1, 0.2), quiet_days=38),
    DemoUser("Fay", "no scores", (None, None), quiet_days=62),
    DemoUser("Gus", "neutral", (0.6, 0.5), quiet_days=0.5),
)

CONTENT = {
    "happy": ("We're so excited for the party!", "The chef was amazing, thank you!"),
    "neutral": ("Can I change the time of my booking?", "Ok, that works."),
    "unhappy": ("The food arrived late.", "Honestly, I'm disappointed."),
    "no scores": ("Hello?", "Thanks."),
}


@dataclass
class DemoDelivery:
    user_id: str
    trigger_type: str
    template_id: str
    emotion_mean: float | None
    reason: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "trigger_type": self.trigger_type,
                "template_id": self.template_id, "emotion_mean": self.emotion_mean,
                "reason": self.reason, "message": self.message}


@dataclass
class DemoResult:
    database: str
    replaced_rows: int = 0
    users: int = 0
    messages: int = 0
    post_events_scheduled: int = 0
    reengagements_scheduled: int = 0
    delivered: int = 0
    not_contacted: list[str] = field(default_factory=list)
    deliveries: list[DemoDelivery] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"database": self.database, "replaced_rows": self.replaced_rows,
                "users": self.users, "messages": self.messages,
                "post_events_scheduled": self.post_events_scheduled,
                "reengagements_scheduled": self.reengagements_scheduled,
                "delivered": self.delivered, "not_contacted": self.not_contacted,
                "deliveries": [d.to_json() for d in self.deliveries]}


def _seed_rows(now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    convs: list[dict[str, Any]] = []
    msgs: list[dict[str, Any]] = []
    for user in USERS:
        last = now - timedelta(days=user.quiet_days)
        start = last - timedelta(minutes=2 * len(user.scores))
        convs.append({"id": user.conversation_id, "user_id": user.user_id,
                      "created_at": start, "updated_at": last,
                      "title": f"{user.name}'s booking"})
        lines = CONTENT[user.mood]
        for i, score in enumerate(user.scores):
            at = last - timedelta(minutes=2 * (len(user.scores) - 1 - i))
            msgs.append({"id": f"{user.conversation_id}-m{i}u",
                         "conversation_id": user.conversation_id, "user_id": user.user_id,
                         "role": "user", "content": lines[i % len(lines)],
                         "emotion_score": score, "created_at": at})
            if i + 1 < len(user.scores):  # the assistant answers between the user's lines
                msgs.append({"id": f"{user.conversation_id}-m{i}a",
                             "conversation_id": user.conversation_id,
                             "user_id": user.user_id, "role": "assistant",
                             "content": "Thanks for letting us know!",
                             "emotion_score": None, "created_at": at + timedelta(minutes=1)})
    return convs, msgs


def _reason(trigger_type: str, mean: float | None, trigger_data: dict[str, Any]) -> str:
    band = emotion_band(mean)
    mood = ("no emotion scores, so neutral" if mean is None
            else f"emotion mean {mean:g} is {band}")
    if trigger_type == "reengagement":
        return f"inactive {trigger_data.get('days_inactive')} days; {mood}"
    hours = float(trigger_data.get("delay_hours") or 24)
    return f"event {hours:g} hours ago; {mood}"


def run_demo(ctx: Context, *, allow_shared: bool = False) -> DemoResult:
    """Seed, schedule, deliver, explain. Refuses a PostgreSQL database unless
    `allow_shared`, and any database holding due follow-ups that are not the demo's (the
    demo's pass would hand them to its in-memory sender)."""
    from followup_cli.service.delivery import PassOptions, run_due
    from followup_cli.service.senders import MemorySender

    settings = ctx.settings
    if ctx.db.is_postgres and not allow_shared:
        raise RuleViolation(
            f"the demo writes sample rows (users demo-*) into {settings.database_display}: "
            "pass --yes to do it anyway, or run it on the embedded database")
    if not settings.enabled:
        raise RuleViolation("SCHEDULER_ENABLED is false: the demo's passes would do nothing")
    now = ctx.now()
    result = DemoResult(database=settings.database_display)
    with ctx.db.transaction() as conn:
        others = history.count_other_due(conn, PREFIX, now)
        if others:
            raise RuleViolation(
                f"{settings.database_display} has {others} due follow-ups of real users: the "
                "demo's delivery pass would take them too. Run the demo on its own database, "
                "e.g. DATABASE_URL=sqlite:///followup-demo.db followup demo")
        result.replaced_rows = history.delete_users_with_prefix(conn, PREFIX)
        convs, msgs = _seed_rows(now)
        history.insert_conversations(conn, convs)
        history.insert_messages(conn, msgs)
    result.users, result.messages = len(USERS), len(msgs)

    zone = settings.timezone
    rows = [
        ImportRow(n, post_event_request(
            zone, user_id=u.user_id, conversation_id=u.conversation_id,
            event_date=iso(now - timedelta(hours=settings.delay_hours,
                                           minutes=u.due_minutes_ago)),
            booking_id=f"B-{1000 + n}"))
        for n, u in enumerate(USERS, start=1) if u.due_minutes_ago is not None
    ]
    imported = import_rows(ctx, rows, source="demo")
    result.post_events_scheduled = imported.scheduled
    scan = scan_inactive(ctx, ScanOptions(user_ids=[u.user_id for u in USERS]))
    result.reengagements_scheduled = scan.scheduled

    sender = MemorySender()
    run_due(ctx, PassOptions(), sender=sender)
    sent = [p for p in sender.payloads if str(p["user_id"]).startswith(PREFIX)]
    with ctx.db.transaction(readonly=True) as conn:
        scores = conversations.recent_scores_many(
            conn, [str(p["conversation_id"]) for p in sent])
    for p in sorted(sent, key=lambda p: (p["trigger_type"], p["user_id"])):
        mean = emotion_mean(scores.get(str(p["conversation_id"]), []))
        result.deliveries.append(DemoDelivery(
            str(p["user_id"]), str(p["trigger_type"]), str(p["template_id"]), mean,
            _reason(str(p["trigger_type"]), mean, dict(p.get("trigger_data") or {})),
            str(p["message"])))
    result.delivered = len(result.deliveries)
    contacted = {d.user_id for d in result.deliveries}
    result.not_contacted = [u.user_id for u in USERS if u.user_id not in contacted]
    log.info("demo: %d users seeded, %d delivered", result.users, result.delivered)
    return result

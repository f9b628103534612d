"""The values the rules speak of: statuses, trigger types, the activity role, the duplicate
window. Plain constants, so light modules (the idle probe, the booking path on the raw
driver) can name them without importing SQLAlchemy; db/rules.py builds the SQL from them."""

from __future__ import annotations

from datetime import timedelta

PENDING, PROCESSING, EXECUTED, FAILED, CANCELLED = (
    "pending", "processing", "executed", "failed", "cancelled")
STATUSES = (PENDING, PROCESSING, EXECUTED, FAILED, CANCELLED)
POST_EVENT, REENGAGEMENT = "post_event", "reengagement"
TRIGGER_TYPES = (POST_EVENT, REENGAGEMENT)

LIVE = (PENDING, PROCESSING)
# A pass's run record (followup_runs.status)
RUN_RUNNING, RUN_OK, RUN_FAILED, RUN_ABANDONED, RUN_STOPPED = (
    "running", "ok", "failed", "abandoned", "stopped")
DUPLICATE_WINDOW = timedelta(days=1)
ACTIVITY_ROLE = "user"
EMOTION_WINDOW = 5  # a conversation's last N scored messages choose the template

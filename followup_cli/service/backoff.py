"""When a failed delivery is tried again, and when it is given up (DESIGN "Rules")."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

BASE_SECONDS = 60.0
CAP_SECONDS = 3600.0
JITTER = (0.8, 1.2)
# A receiver's Retry-After is honoured uncapped, within reason: an absurd value (a bug on
# its side) must not overflow the date arithmetic and abort the pass's write-back.
MAX_RETRY_AFTER_SECONDS = 30 * 86400.0


def retry_delay(retry_count: int, *, retry_after: float | None = None,
                rng: random.Random | None = None) -> float:
    """Seconds to wait after the `retry_count`-th failed attempt (1 for the first).

    60 s × 2^(retry_count − 1) × a factor in [0.8, 1.2], capped at an hour; jitter spreads
    a burst that failed together. A receiver's Retry-After wins when it is longer, uncapped:
    it knows its own recovery time better than we do.
    """
    if retry_count < 1:
        raise ValueError("retry_count counts failed attempts and starts at 1")
    factor = (rng or random).uniform(*JITTER)
    # min() before the power would overflow for absurd counts; 2**12 already exceeds the cap.
    delay = min(CAP_SECONDS, BASE_SECONDS * 2.0 ** min(retry_count - 1, 16) * factor)
    if retry_after is not None and retry_after > delay:
        return min(float(retry_after), MAX_RETRY_AFTER_SECONDS)
    return delay


@dataclass(frozen=True)
class AttemptFailure:
    """The state a follow-up moves to after a failed attempt."""

    status: str  # "pending" (retry later) or "failed"
    retry_count: int
    next_attempt_at: datetime


def after_failure(*, retry_count: int, max_retries: int, transient: bool,
                  retry_after: float | None, now: datetime, next_attempt_at: datetime,
                  rng: random.Random | None = None) -> AttemptFailure:
    """`retry_count` is the count before this attempt. A permanent failure, or one that
    takes the count past `max_retries`, ends in `failed` (next_attempt_at left as it was)."""
    count = retry_count + 1
    if not transient or count > max_retries:
        return AttemptFailure("failed", count, next_attempt_at)
    delay = retry_delay(count, retry_after=retry_after, rng=rng)
    return AttemptFailure("pending", count, now + timedelta(seconds=delay))

"""Retry timing and the pending → failed rule (DESIGN "Rules")."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from followup_cli.service.backoff import after_failure, retry_delay

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class Fixed(random.Random):
    """A Random whose uniform() always returns one end of the range (or its middle)."""

    def __init__(self, where: str) -> None:
        super().__init__(0)
        self.where = where

    def uniform(self, a: float, b: float) -> float:
        return {"low": a, "high": b, "mid": (a + b) / 2}[self.where]


@pytest.mark.parametrize(("count", "expected"), [(1, 60), (2, 120), (3, 240), (6, 1920),
                                                 (7, 3600), (40, 3600)])
def test_doubles_from_a_minute_and_caps_at_an_hour(count: int, expected: float) -> None:
    assert retry_delay(count, rng=Fixed("mid")) == pytest.approx(expected)


def test_jitter_stays_within_twenty_percent() -> None:
    rng = random.Random(7)
    seen = [retry_delay(2, rng=rng) for _ in range(2000)]
    assert min(seen) >= 96 and max(seen) <= 144
    assert max(seen) - min(seen) > 40  # it does spread


def test_cap_applies_after_jitter() -> None:
    assert retry_delay(7, rng=Fixed("high")) == 3600
    assert retry_delay(6, rng=Fixed("high")) == pytest.approx(2304)


def test_retry_after_wins_when_longer_even_past_the_cap() -> None:
    assert retry_delay(1, retry_after=7200, rng=Fixed("mid")) == 7200
    assert retry_delay(3, retry_after=5, rng=Fixed("mid")) == pytest.approx(240)


def test_retry_count_starts_at_one() -> None:
    with pytest.raises(ValueError):
        retry_delay(0)


def test_transient_failure_is_retried_until_max_retries() -> None:
    first = after_failure(retry_count=0, max_retries=3, transient=True, retry_after=None,
                          now=NOW, next_attempt_at=NOW, rng=Fixed("low"))
    assert first.status == "pending" and first.retry_count == 1
    assert first.next_attempt_at == NOW + timedelta(seconds=48)
    third = after_failure(retry_count=2, max_retries=3, transient=True, retry_after=None,
                          now=NOW, next_attempt_at=NOW, rng=Fixed("low"))
    assert third.status == "pending" and third.retry_count == 3
    # the 4th failed attempt takes retry_count past FOLLOWUP_MAX_RETRIES=3
    fourth = after_failure(retry_count=3, max_retries=3, transient=True, retry_after=None,
                           now=NOW, next_attempt_at=NOW - timedelta(minutes=5))
    assert fourth.status == "failed" and fourth.retry_count == 4
    assert fourth.next_attempt_at == NOW - timedelta(minutes=5)  # left as it was


def test_permanent_failure_fails_at_once() -> None:
    state = after_failure(retry_count=0, max_retries=3, transient=False, retry_after=None,
                          now=NOW, next_attempt_at=NOW)
    assert state.status == "failed" and state.retry_count == 1


def test_max_retries_zero_means_one_attempt() -> None:
    state = after_failure(retry_count=0, max_retries=0, transient=True, retry_after=None,
                          now=NOW, next_attempt_at=NOW)
    assert state.status == "failed"


def test_an_absurd_retry_after_is_bounded_not_an_overflow() -> None:
    from datetime import UTC, datetime

    from followup_cli.service.backoff import MAX_RETRY_AFTER_SECONDS

    assert retry_delay(1, retry_after=1e15, rng=Fixed("mid")) == MAX_RETRY_AFTER_SECONDS
    now = datetime(2026, 1, 1, tzinfo=UTC)
    state = after_failure(retry_count=0, max_retries=3, transient=True, retry_after=1e15,
                          now=now, next_attempt_at=now)
    assert state.status == "pending" and state.next_attempt_at.year == 2026

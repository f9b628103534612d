"""Stats: the guide's key metrics and template performance, and the Prometheus exposition."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from followup_cli.errors import InputError
from followup_cli.service.context import Context
from followup_cli.service.monitoring import collect_stats, local_days
from tests.conftest import FakeClock, MakeCtx
from tests.helpers import add_followup


def seed(ctx: Context, now: datetime) -> None:
    day = timedelta(days=1)
    # today: two executed, 60 s and 180 s late
    add_followup(ctx, status="executed", template_id="post_event_high_emotion",
                 scheduled_at=now - timedelta(hours=1), executed_at=now - timedelta(minutes=59))
    add_followup(ctx, status="executed", template_id="post_event_high_emotion",
                 scheduled_at=now - timedelta(hours=2), executed_at=now - timedelta(minutes=117))
    # two days ago: one executed 600 s late, created 9 days ago (outside --days 7)
    add_followup(ctx, status="executed", template_id="reengagement_low_emotion",
                 trigger_type="reengagement", created_at=now - 9 * day,
                 scheduled_at=now - 2 * day, executed_at=now - 2 * day + timedelta(seconds=600))
    # eight days ago: outside the 7-day execution rate
    add_followup(ctx, status="executed", scheduled_at=now - 8 * day,
                 executed_at=now - 8 * day, created_at=now - 8 * day)
    for i in range(12):
        add_followup(ctx, id=f"fail{i:02d}", status="failed", user_id=f"u{i}",
                     error_message=f"HTTP 50{i % 3}", retry_count=4,
                     template_id="post_event_low_emotion",
                     created_at=now - timedelta(minutes=100 - i))
    add_followup(ctx, scheduled_at=now + day)  # pending, neutral
    add_followup(ctx, status="cancelled", cancelled_at=now)


def test_key_metrics(ctx: Context, clock: FakeClock) -> None:
    seed(ctx, clock.now)
    stats = collect_stats(ctx)
    assert stats.pending_jobs == 1
    assert stats.executed_today == 2
    assert stats.failed_jobs == 12
    # the 10 newest failures, newest first (by created_at, as the guide orders them)
    assert [f["id"] for f in stats.recent_failures] == [f"fail{i:02d}" for i in
                                                         range(11, 1, -1)]
    first = stats.to_json()["recent_failures"][0]
    assert (first["user_id"], first["error_message"], first["retry_count"]) == (
        "u11", "HTTP 502", 4)
    rate = {d.date: d for d in stats.execution_rate}
    assert len(stats.execution_rate) == 7
    assert stats.execution_rate[0].date == date(2026, 11, 20)
    assert rate[date(2026, 11, 20)].executed == 2
    assert rate[date(2026, 11, 20)].avg_delay_seconds == pytest.approx(120, abs=0.01)
    assert rate[date(2026, 11, 18)].executed == 1
    assert rate[date(2026, 11, 18)].avg_delay_seconds == pytest.approx(600, abs=0.01)
    assert rate[date(2026, 11, 19)].executed == 0
    assert rate[date(2026, 11, 19)].avg_delay_seconds is None
    assert date(2026, 11, 12) not in rate


def test_template_distribution_and_performance(ctx: Context, clock: FakeClock) -> None:
    seed(ctx, clock.now)
    doc = collect_stats(ctx).to_json()
    assert doc["template_distribution"][0] == {"template_id": "post_event_low_emotion",
                                               "count": 12}
    perf = {t["template_id"]: t for t in doc["template_performance"]}
    assert perf["post_event_low_emotion"] == {"template_id": "post_event_low_emotion",
                                              "used": 12, "executed": 0, "failed": 12}
    assert perf["post_event_high_emotion"]["executed"] == 2
    assert perf["post_event_neutral_emotion"]["used"] == 2  # pending + cancelled
    assert "reengagement_low_emotion" not in perf  # created 9 days ago
    perf30 = {t.template_id: t for t in collect_stats(ctx, days=30).templates}
    assert perf30["reengagement_low_emotion"].executed == 1


def test_days_must_be_positive(ctx: Context) -> None:
    with pytest.raises(InputError, match="days"):
        collect_stats(ctx, days=0)


def test_daily_rate_uses_local_days(make_ctx: MakeCtx, clock: FakeClock) -> None:
    # Tokyo is UTC+9: 2026-11-20 16:00 UTC is already the 21st there
    clock.now = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
    ctx = make_ctx(SCHEDULER_TIMEZONE="Asia/Tokyo")
    add_followup(ctx, status="executed", scheduled_at=clock.now,
                 executed_at=datetime(2026, 11, 20, 15, 30, tzinfo=UTC))  # 21st 00:30 JST
    add_followup(ctx, status="executed", scheduled_at=clock.now,
                 executed_at=datetime(2026, 11, 20, 14, 30, tzinfo=UTC))  # 20th 23:30 JST
    stats = collect_stats(ctx)
    assert stats.execution_rate[0].date == date(2026, 11, 21)
    assert [d.executed for d in stats.execution_rate[:2]] == [1, 1]
    assert stats.executed_today == 1


def test_local_days_across_dst_change() -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    days = local_days(datetime(2026, 11, 2, 12, tzinfo=UTC), zone, 2)
    (d0, s0, e0), (d1, s1, e1) = days
    assert (d0, d1) == (date(2026, 11, 2), date(2026, 11, 1))
    assert e1 == s0
    assert e1 - s1 == timedelta(hours=25)  # fall back on 2026-11-01
    assert e0 - s0 == timedelta(hours=24)

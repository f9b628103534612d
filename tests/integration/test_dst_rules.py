"""DST rules through scheduling, import and scanning, on real SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from followup_cli.service.importing import import_schedule
from followup_cli.service.requests import post_event_request
from followup_cli.service.scanning import scan_inactive
from followup_cli.service.scheduling import schedule_post_event
from tests.conftest import FakeClock, MakeCtx
from tests.helpers import add_conversation, rows


def test_gap_and_repeated_event_times_in_los_angeles(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(SCHEDULER_TIMEZONE="America/Los_Angeles")
    gap = schedule_post_event(ctx, post_event_request(
        ctx.settings.timezone, user_id="u1", conversation_id="c1",
        event_date="2026-03-08T02:30"))
    # 02:30 does not exist: read as 03:30 PDT (10:30 UTC); due 24 elapsed hours later
    assert gap.scheduled_at == datetime(2026, 3, 9, 10, 30, tzinfo=UTC)
    repeated = schedule_post_event(ctx, post_event_request(
        ctx.settings.timezone, user_id="u2", conversation_id="c2",
        event_date="2026-11-01T01:30"))
    # 01:30 happens twice: the first (PDT, 08:30 UTC) is meant
    assert repeated.scheduled_at == datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
    got = {r["user_id"]: r for r in rows(ctx)}
    assert got["u2"]["trigger_data"]["event_date"] == "2026-11-01T08:30:00+00:00"
    assert got["u2"]["scheduled_at"] - got["u2"]["event_at"] == timedelta(hours=24)


def test_import_reads_london_gap_and_fold_the_same_way(make_ctx: MakeCtx, tmp_path: Path
                                                      ) -> None:
    ctx = make_ctx(SCHEDULER_TIMEZONE="Europe/London")
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        {"type": "post_event", "user_id": "u1", "conversation_id": "c1",
         "event_date": "2026-03-29T01:30"},
        {"type": "post_event", "user_id": "u2", "conversation_id": "c2",
         "event_date": "2026-10-25T01:30"},
        {"type": "reengagement", "user_id": "u3", "at": "2026-10-25T01:15"},
    ]), encoding="utf-8")
    assert import_schedule(ctx, str(path)).scheduled == 3
    got = {r["user_id"]: r for r in rows(ctx)}
    assert got["u1"]["event_at"] == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 02:30 BST
    assert got["u1"]["scheduled_at"] == datetime(2026, 3, 30, 1, 30, tzinfo=UTC)
    assert got["u2"]["event_at"] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # BST
    assert got["u3"]["scheduled_at"] == datetime(2026, 10, 25, 0, 15, tzinfo=UTC)


def test_scan_compares_instants_across_a_dst_change(make_ctx: MakeCtx, clock: FakeClock
                                                    ) -> None:
    # now is 2026-11-20 12:00 UTC; 30 days earlier is before LA's fall-back on Nov 1, so
    # the local calendar has 30 days and one extra hour in between: instants decide.
    ctx = make_ctx(SCHEDULER_TIMEZONE="America/Los_Angeles")
    add_conversation(ctx, "c1", "u1", [0.5], at=clock.now - timedelta(days=30))
    add_conversation(ctx, "c2", "u2", [0.5], at=clock.now - timedelta(days=30) +
                     timedelta(minutes=30))
    result = scan_inactive(ctx)
    assert result.scheduled == 1
    [row] = rows(ctx)
    assert row["user_id"] == "u1"
    assert row["trigger_data"] == {"days_inactive": 30}

"""Paging (`list --limit 0`, `total`), id prefixes, bulk retry and `templates explain`, on
both databases, through the service layer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.errors import ExitCode, InputError
from followup_cli.service.browse import browse_followups, explain_templates, list_followups
from followup_cli.service.bulk_retry import retry_failed
from followup_cli.service.context import Context
from followup_cli.service.ids import MIN_PREFIX, resolve_ids
from followup_cli.service.requests import post_event_request
from followup_cli.service.scheduling import schedule_post_event
from tests.conftest import FakeClock, MakeCtx
from tests.helpers import add_conversation, add_followup, rows


def add_failed(ctx: Context, n: int, *, prefix: str = "f", **fields: Any) -> list[str]:
    """n failed follow-ups of n different users (so no per-user rule interferes)."""
    now = ctx.now()
    batch = [{
        "id": f"{prefix}-{i:05d}", "conversation_id": f"c{i}",
        "user_id": fields.get("user_id", f"{prefix}-user{i}"),
        "trigger_type": fields.get("trigger_type", "post_event"), "trigger_data": {},
        "scheduled_at": now - timedelta(days=1), "next_attempt_at": now - timedelta(days=1),
        "status": "failed", "template_id": "post_event_neutral_emotion",
        "message_content": "hello", "created_at": now - timedelta(days=2),
        "retry_count": 4, "error_message": "HTTP 503",
        "last_attempt_at": fields.get("last_attempt_at", now - timedelta(hours=1)),
    } for i in range(n)]
    with ctx.db.transaction() as conn:
        conn.execute(sa.insert(sf), batch)
    return [r["id"] for r in batch]


def status_counts(ctx: Context) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows(ctx):
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


# --- list: total and --limit 0 ----------------------------------------------------------

def test_list_reports_the_total_beside_a_page(ctx: Context) -> None:
    add_failed(ctx, 120)
    add_followup(ctx, id="p1", user_id="someone")
    page = list_followups(ctx, statuses=["failed"])
    assert (len(page.followups), page.total, page.limit) == (50, 120, 50)
    doc = page.to_json()
    assert (doc["count"], doc["total"], doc["limit"]) == (50, 120, 50)


def test_limit_0_lists_every_match_in_batches(ctx: Context) -> None:
    ids = add_failed(ctx, 120)
    with browse_followups(ctx, statuses=["failed"], limit=0, batch=7) as page:
        assert (page.total, page.shown) == (120, 120)
        seen = [r["id"] for r in page.rows]
    assert sorted(seen) == sorted(ids) and len(set(seen)) == 120
    assert "message_content" not in list_followups(ctx, limit=0).followups[0]


# --- id prefixes ------------------------------------------------------------------------

def test_a_unique_prefix_of_8_resolves_an_ambiguous_one_lists_candidates(ctx: Context
                                                                         ) -> None:
    for fid in ("fff2cf06-1111", "fff2cf06-2222", "abcdef12-3333", "short"):
        add_followup(ctx, id=fid, user_id=fid)
    assert resolve_ids(ctx, ["abcdef12"]) == ["abcdef12-3333"]
    assert resolve_ids(ctx, ["fff2cf06-1"]) == ["fff2cf06-1111"]
    assert resolve_ids(ctx, ["short"]) == ["short"]  # an exact id of any length
    assert resolve_ids(ctx, ["abcdef1"]) == ["abcdef1"]  # 7 characters: left as given
    assert resolve_ids(ctx, ["nomatch-at-all"]) == ["nomatch-at-all"]
    with pytest.raises(InputError, match="ambiguous") as caught:
        resolve_ids(ctx, ["fff2cf06"])
    assert "fff2cf06-1111, fff2cf06-2222" in str(caught.value)
    assert caught.value.exit_code == ExitCode.INVALID


def test_an_ambiguous_prefix_lists_at_most_ten_candidates(ctx: Context) -> None:
    for i in range(12):
        add_followup(ctx, id=f"deadbeef-{i:02d}", user_id=f"u{i}")
    with pytest.raises(InputError) as caught:
        resolve_ids(ctx, ["deadbeef"])
    message = str(caught.value)
    assert message.count("deadbeef-") == 10 and "and more" in message


def test_prefixes_are_case_sensitive_and_wildcards_are_literal(ctx: Context) -> None:
    add_followup(ctx, id="ABCDEFGH-1", user_id="a")
    add_followup(ctx, id="abc%efgh-2", user_id="b")
    assert resolve_ids(ctx, ["abcdefgh"]) == ["abcdefgh"]  # not ABCDEFGH-1
    assert resolve_ids(ctx, ["abc_efgh"]) == ["abc_efgh"]  # _ is no wildcard
    assert resolve_ids(ctx, ["abc%efgh"]) == ["abc%efgh-2"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text("ab0-", min_size=8, max_size=12), min_size=1, max_size=6,
                unique=True),
       st.text("ab0-", min_size=1, max_size=12))
def test_prefix_resolution_matches_its_definition(ctx: Context, ids: list[str],
                                                  typed: str) -> None:
    with ctx.db.transaction() as conn:
        conn.execute(sa.delete(sf))
    for fid in ids:
        add_followup(ctx, id=fid, user_id=fid)
    starting = sorted(i for i in ids if i.startswith(typed))
    if typed in ids or len(typed) < MIN_PREFIX or len(starting) <= 1:
        expected = typed if typed in ids or not starting or len(typed) < MIN_PREFIX \
            else starting[0]
        assert resolve_ids(ctx, [typed]) == [expected]
    else:
        with pytest.raises(InputError, match="ambiguous"):
            resolve_ids(ctx, [typed])


# --- retry --failed ---------------------------------------------------------------------

def test_retry_failed_retries_every_match_in_pages(ctx: Context, clock: FakeClock) -> None:
    """The README's `list --json | jq | xargs retry` left 70 of 120 failed."""
    add_failed(ctx, 120)
    result = retry_failed(ctx, page=50)
    assert (result.matched, result.retried, result.exit_code) == (120, 120, ExitCode.OK)
    assert status_counts(ctx) == {"pending": 120}
    assert result.due_at == clock.now
    assert {r["retry_count"] for r in rows(ctx)} == {0}


def test_retry_failed_filters(ctx: Context, clock: FakeClock) -> None:
    add_failed(ctx, 3, prefix="a", user_id="alice")
    add_failed(ctx, 2, prefix="r", trigger_type="reengagement")
    add_failed(ctx, 4, prefix="old", last_attempt_at=clock.now - timedelta(days=3))
    assert retry_failed(ctx, since="2026-11-19T00:00Z", user_id="nobody").matched == 0
    assert retry_failed(ctx, user_id="alice").retried == 3
    assert retry_failed(ctx, trigger_type="reengagement").retried == 2
    assert retry_failed(ctx, since="2026-11-19T00:00Z").matched == 0  # the rest failed before
    assert status_counts(ctx) == {"pending": 5, "failed": 4}
    assert retry_failed(ctx, since="2026-11-17T00:00Z").retried == 4


def test_retry_failed_keeps_the_rules_of_retry(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(FOLLOWUP_MAX_PENDING_PER_USER="2")
    add_failed(ctx, 5, prefix="capped", user_id="bob")
    result = retry_failed(ctx)
    assert (result.matched, result.retried) == (5, 2)
    assert result.counts == {"retried": 2, "at_cap": 3}
    assert result.exit_code == ExitCode.REFUSED
    assert [o.outcome for o in result.refused] == ["at_cap"] * 3
    assert result.to_json()["refused"][0]["status"] == "failed"


def test_retry_failed_refuses_bad_filters(ctx: Context) -> None:
    with pytest.raises(InputError):
        retry_failed(ctx, trigger_type="sms")
    with pytest.raises(InputError):
        retry_failed(ctx, since="last tuesday")


# --- templates explain ------------------------------------------------------------------

def test_explain_shows_what_the_scheduling_path_chose(ctx: Context) -> None:
    # 0.9, 0.5, 0.7 sum to 2.0999999999999996: the mean is 0.7 only as the rules round it
    add_conversation(ctx, "c-happy", "alice", [0.1, 0.9, None, 0.5, 0.7, 0.9, 0.5, 0.7])
    explained = explain_templates(ctx, "c-happy")
    assert [m.emotion_score for m in explained.messages] == [0.7, 0.5, 0.9, 0.7, 0.5]
    assert explained.mean == 0.66  # the last 5 scored: 0.5 0.9 0.7 0.5 0.7
    assert explained.band == "neutral"
    request = post_event_request(ctx.settings.timezone, user_id="alice",
                                 conversation_id="c-happy", event_date="2026-11-14T18:00")
    scheduled = schedule_post_event(ctx, request)
    assert explained.templates["post_event"].id == scheduled.template_id
    assert explained.mean == scheduled.emotion_mean
    assert explained.templates["reengagement"].id == "reengagement_neutral_emotion"
    doc = explained.to_json()
    assert "content" not in str(doc["messages"]) and "hello" not in str(doc)
    assert doc["window"] == 5 and doc["conversation_found"] is True


def test_explain_rounds_like_the_rules(ctx: Context) -> None:
    add_conversation(ctx, "c-edge", "bob", [0.9, 0.5, 0.7])
    explained = explain_templates(ctx, "c-edge")
    assert explained.mean == 0.7 and explained.band == "high"
    assert explained.templates["post_event"].id == "post_event_high_emotion"


def test_explain_without_history_is_neutral(ctx: Context) -> None:
    explained = explain_templates(ctx, "c-unknown")
    assert (explained.conversation_found, explained.messages, explained.mean) == (
        False, [], None)
    assert explained.templates["post_event"].id == "post_event_neutral_emotion"

"""Issue 11 problems 3 and 6 through the CLI: paging, bulk retry, id prefixes (typed and
shown), `templates explain`."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from typer.testing import CliRunner

from followup_cli.cli.app import app
from followup_cli.cli.ops_cmds import _show_list, _show_templates
from followup_cli.cli.output import Output
from followup_cli.service.browse import browse_followups, list_templates
from followup_cli.service.context import Context
from tests.conftest import FakeClock, MakeCtx
from tests.helpers import add_conversation, add_followup, rows
from tests.integration.test_operator_lookup import add_failed, status_counts

runner = CliRunner()
UUIDS = ["fff2cf06-8a8f-4c1e-9f59-2f7d0c6f1b2a", "fff2cf06-1d2c-4c1e-9f59-000000000001",
         "0a1b2c3d-8a8f-4c1e-9f59-2f7d0c6f1b2a"]


def run(url: str, *args: str, **env: str) -> Any:
    return runner.invoke(app, list(args), env={"DATABASE_URL": url, **env})


@pytest.fixture
def live(make_ctx: MakeCtx, clock: FakeClock) -> Context:
    from followup_cli.timeutil import utcnow

    clock.now = utcnow()
    return make_ctx()


# --- list: paging -----------------------------------------------------------------------

def test_list_json_carries_the_total_and_limit_0_lists_all(db_url: str, live: Context
                                                           ) -> None:
    add_failed(live, 120)
    page = run(db_url, "list", "--status", "failed", "--json")
    assert page.exit_code == 0, page.output
    doc = json.loads(page.stdout)
    assert (doc["count"], doc["total"], doc["limit"], len(doc["followups"])) == (
        50, 120, 50, 50)
    everything = run(db_url, "list", "--status", "failed", "--limit", "0", "--json")
    doc = json.loads(everything.stdout)
    assert (doc["count"], doc["total"], doc["limit"], len(doc["followups"])) == (
        120, 120, 0, 120)
    assert len({r["id"] for r in doc["followups"]}) == 120


def test_list_without_matches_is_still_one_document(db_url: str) -> None:
    result = run(db_url, "list", "--json")
    assert json.loads(result.stdout) == {"total": 0, "limit": 50, "followups": [], "count": 0}
    plain = run(db_url, "list")
    assert plain.stdout == "no follow-ups matched\n"


def test_list_limit_0_streams_plain_lines_without_a_terminal(db_url: str, live: Context
                                                              ) -> None:
    add_failed(live, 60)
    result = run(db_url, "list", "--limit", "0")
    lines = result.stdout.splitlines()
    assert lines[0].split("\t")[0] == "id" and len(lines) == 61
    assert "\x1b[" not in result.stdout


# --- list and templates list at 80 and 160 columns --------------------------------------

@pytest.mark.parametrize("width", [80, 160])
def test_list_shows_ids_whole_on_any_terminal(ctx: Context, width: int) -> None:
    for i, fid in enumerate(UUIDS):
        add_followup(ctx, id=fid, user_id=f"customer-{i}", trigger_type="reengagement",
                     template_id="reengagement_neutral_emotion")
    buf = io.StringIO()
    with browse_followups(ctx) as page:
        _show_list(Output(json_mode=False, stream=buf, terminal=True, width=width), page)
    text = re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue())
    assert all(fid in text for fid in UUIDS), text
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    if width == 160:  # every column fits
        assert "reengagement_neutral_emotion" in text and "customer-0" in text
        assert "not shown" not in text
    else:  # left out, and said so
        assert "not shown at 80 columns" in text


@pytest.mark.parametrize("width", [80, 160])
def test_templates_list_keeps_ids_and_cuts_the_message_to_one_line(
        make_ctx: MakeCtx, tmp_path: Any, width: int) -> None:
    long_id = "vip_post_event_for_returning_customers"
    path = tmp_path / "t.toml"
    path.write_text(f'[templates.{long_id}]\ncontent = """Dear guest, thank you for '
                    'celebrating with us on {event_date}.\nWe hope to see you again.\n'
                    'Line three.\nLine four.\nLine five.\nLine six.\nLine seven."""\n')
    ctx = make_ctx(FOLLOWUP_TEMPLATES_FILE=str(path))
    buf = io.StringIO()
    result = list_templates(ctx)
    _show_templates(Output(json_mode=False, stream=buf, terminal=True, width=width), result)
    text = re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue())
    assert long_id in text and "post_event_neutral_emotion" in text
    [row] = [line for line in text.splitlines() if long_id in line]
    assert "Dear" in row and "We hope" not in text  # the first line, cut to fit
    assert max(len(line) for line in text.splitlines()) <= width
    assert "Line seven" not in text  # was: the message wrapped over seven lines


# --- id prefixes through show, cancel, retry --------------------------------------------

def test_show_cancel_retry_take_a_unique_prefix(db_url: str, live: Context) -> None:
    for fid in UUIDS:
        add_followup(live, id=fid, user_id=fid[:4] + fid[-4:])
    shown = run(db_url, "show", "0a1b2c3d", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["id"] == UUIDS[2]
    cancelled = run(db_url, "cancel", "0a1b2c3d-8a8f")
    assert cancelled.exit_code == 0 and f"cancelled {UUIDS[2]}" in cancelled.stdout
    add_failed(live, 1, prefix="9999aaaa")
    retried = run(db_url, "retry", "9999aaaa")
    assert retried.exit_code == 0 and "9999aaaa-00000: pending again" in retried.stdout


@pytest.mark.parametrize("command", [["show"], ["cancel"], ["retry"]])
def test_an_ambiguous_prefix_is_exit_2_listing_the_candidates(
        db_url: str, live: Context, command: list[str]) -> None:
    for fid in UUIDS:
        add_followup(live, id=fid, user_id="u" + fid[-4:])
    result = run(db_url, *command, "fff2cf06")
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert UUIDS[0] in line and UUIDS[1] in line and "ambiguous" in line
    assert {r["status"] for r in rows(live)} == {"pending"}  # nothing changed
    doc = json.loads(run(db_url, *command, "fff2cf06", "--json").stdout)
    assert doc["error"]["exit_code"] == 2


def test_a_prefix_shorter_than_8_is_exit_2(db_url: str, live: Context) -> None:
    add_followup(live, id=UUIDS[2])
    result = run(db_url, "show", "0a1b2c3")
    assert result.exit_code == 2
    assert "at least 8 characters" in result.stderr
    assert run(db_url, "cancel", "0a1b2c3").exit_code == 2
    assert {r["status"] for r in rows(live)} == {"pending"}


# --- retry --failed ---------------------------------------------------------------------

def test_retry_failed_retries_all_120(db_url: str, live: Context) -> None:
    """Problem 3: the README's list|jq|xargs recipe left 70 of 120 failed."""
    add_failed(live, 120)
    result = run(db_url, "retry", "--failed", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["matched"], doc["retried"], doc["exit_code"]) == (120, 120, 0)
    assert status_counts(live) == {"pending": 120}
    again = run(db_url, "retry", "--failed")
    assert again.exit_code == 0 and again.stdout == "no failed follow-ups matched\n"


def test_retry_failed_with_filters_and_refusals(db_url: str, live: Context) -> None:
    add_failed(live, 12, prefix="bob", user_id="bob")
    add_failed(live, 2, prefix="eve", user_id="eve")
    result = run(db_url, "retry", "--failed", "--user-id", "bob", "--trigger-type",
                 "post_event", "--since", "2000-01-01")
    assert result.exit_code == 3  # the per-user cap (10) left two failed
    assert result.stdout.startswith("retried 10 of 12 failed follow-ups (due now); 2 at_cap")
    assert "FOLLOWUP_MAX_PENDING_PER_USER" in result.stdout
    assert status_counts(live) == {"pending": 10, "failed": 4}


@pytest.mark.parametrize("args", [
    ["retry"], ["retry", "x", "--failed"], ["retry", "x", "--user-id", "u"],
    ["retry", "--since", "2026-01-01"], ["retry", "--failed", "--trigger-type", "sms"],
    ["retry", "--failed", "--since", "someday"],
])
def test_retry_argument_errors_are_one_line(db_url: str, args: list[str]) -> None:
    result = run(db_url, *args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("followup: error: ")


# --- templates explain ------------------------------------------------------------------

def test_templates_explain(db_url: str, live: Context) -> None:
    add_conversation(live, "c7", "alice", [0.2, 0.9, 0.5, 0.7])
    doc = json.loads(run(db_url, "templates", "explain", "--conversation-id", "c7",
                         "--json").stdout)
    assert [m["emotion_score"] for m in doc["messages"]] == [0.7, 0.5, 0.9, 0.2]
    assert [m["role"] for m in doc["messages"]] == ["user"] * 4
    assert doc["mean"] == 0.575 and doc["band"] == "neutral"
    assert doc["templates"] == {
        "post_event": {"id": "post_event_neutral_emotion", "source": "built-in"},
        "reengagement": {"id": "reengagement_neutral_emotion", "source": "built-in"}}
    plain = run(db_url, "templates", "explain", "--conversation-id", "c7")
    assert plain.exit_code == 0, plain.output
    assert "mean: 0.575" in plain.stdout and "post_event_neutral_emotion" in plain.stdout
    assert "hello" not in plain.stdout + json.dumps(doc)  # never the content
    missing = run(db_url, "templates", "explain", "--conversation-id", "nope")
    assert missing.exit_code == 0 and "not stored" in missing.stdout

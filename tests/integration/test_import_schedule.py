"""schedule import and conversation history import on real SQLite and real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from followup_cli.errors import InputError, RuleViolation
from followup_cli.service.context import Context
from followup_cli.service.history import import_history
from followup_cli.service.importing import import_schedule
from followup_cli.service.requests import post_event_request
from followup_cli.service.scanning import scan_inactive
from followup_cli.service.scheduling import schedule_post_event
from tests.conftest import MakeCtx
from tests.helpers import add_conversation, rows


def jsonl(path: Path, records: list[dict[str, object]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def post(user: str, event: str, conv: str = "c1", **extra: object) -> dict[str, object]:
    return {"type": "post_event", "user_id": user, "conversation_id": conv,
            "event_date": event, **extra}


def test_jsonl_import_schedules_every_row(ctx: Context, tmp_path: Path) -> None:
    add_conversation(ctx, "happy", "u1", [0.9, 0.8])
    add_conversation(ctx, "quiet", "u2", [0.5], at=ctx.now() - timedelta(days=40))
    path = jsonl(tmp_path / "in.jsonl", [
        post("u1", "2026-11-14T18:00", conv="happy", booking_id="B-1"),
        {"type": "reengagement", "user_id": "u2"},
        {"type": "reengagement", "user_id": "u3", "days_inactive": 45,
         "at": "2026-12-01T09:00"},
    ])
    result = import_schedule(ctx, path)
    assert (result.rows, result.scheduled, len(result.duplicates)) == (3, 3, 0)
    got = {r["user_id"]: r for r in rows(ctx)}
    assert got["u1"]["template_id"] == "post_event_high_emotion"
    assert got["u1"]["trigger_data"]["booking_id"] == "B-1"
    assert got["u1"]["scheduled_at"] == datetime(2026, 11, 15, 18, tzinfo=UTC)
    assert got["u2"]["conversation_id"] == "quiet"  # the user's most recent one
    assert got["u2"]["trigger_data"] == {"days_inactive": 40}
    assert got["u2"]["scheduled_at"] == ctx.now()
    assert got["u3"]["trigger_data"] == {"days_inactive": 45}
    assert got["u3"]["scheduled_at"] == datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_csv_import_and_naive_times_in_scheduler_zone(make_ctx: MakeCtx, tmp_path: Path
                                                       ) -> None:
    ctx = make_ctx(SCHEDULER_TIMEZONE="America/Los_Angeles")
    path = tmp_path / "in.csv"
    path.write_text(
        "type,user_id,conversation_id,event_date,booking_id,custom_message,days_inactive,at\n"
        "post_event,u1,c1,2026-11-14T18:00,B-1,\"Thanks, again!\",,\n"
        "reengagement,u2,,,,,31,\n", encoding="utf-8")
    result = import_schedule(ctx, str(path))
    assert (result.format, result.scheduled) == ("csv", 2)
    got = {r["user_id"]: r for r in rows(ctx)}
    assert got["u1"]["trigger_data"]["custom_message"] == "Thanks, again!"
    # 18:00 PST = 02:00 UTC next day, plus 24 h
    assert got["u1"]["scheduled_at"] == datetime(2026, 11, 16, 2, tzinfo=UTC)


@pytest.mark.parametrize("bad", [
    {"type": "post_event", "user_id": "u9", "conversation_id": "c9", "event_date": "soon"},
    {"type": "birthday", "user_id": "u9"},
    {"type": "post_event", "user_id": "", "conversation_id": "c9", "event_date": "2026-11-14"},
    {"type": "reengagement", "user_id": "u9", "days_inactive": -3},
    {"type": "reengagement", "user_id": "u9", "event_date": "2026-11-14"},
    {"type": "post_event", "user_id": "u9", "conversation_id": "c9",
     "event_date": "2026-11-14", "colour": "red"},
    {"type": "post_event", "user_id": "u9", "conversation_id": "c9",
     "event_date": "2026-11-14", "custom_message": "x" * 2001},
])
def test_bad_row_in_the_middle_writes_nothing(ctx: Context, tmp_path: Path,
                                              bad: dict[str, object]) -> None:
    good = [post(f"u{i}", "2026-11-14T18:00") for i in range(5)]
    path = jsonl(tmp_path / "in.jsonl", [*good[:3], bad, *good[3:]])
    with pytest.raises(InputError, match=r"^line 4: "):
        import_schedule(ctx, path)
    assert rows(ctx) == []


def test_bad_json_and_bad_csv_cell_name_the_line(ctx: Context, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(post("u1", "2026-11-14")) + "\n\n{oops\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"^line 3: not valid JSON"):
        import_schedule(ctx, str(path))
    csv_path = tmp_path / "in.csv"
    csv_path.write_text("type,user_id,conversation_id,event_date\n"
                        "post_event,u1,c1,2026-11-14\npost_event,u2,c1,yesterday\n"
                        "post_event,u3,c1,2026-11-15\n",
                        encoding="utf-8")
    with pytest.raises(InputError, match=r"^line 3: event_date"):
        import_schedule(ctx, str(csv_path))
    assert rows(ctx) == []


def test_missing_template_variable_found_at_import(make_ctx: MakeCtx, tmp_path: Path) -> None:
    tpl = tmp_path / "t.toml"
    tpl.write_text('[templates.post_event_neutral_emotion]\n'
                   'content = "Booking {booking_id} on {event_date}"\n', encoding="utf-8")
    ctx = make_ctx(FOLLOWUP_TEMPLATES_FILE=str(tpl))
    path = jsonl(tmp_path / "in.jsonl", [post("u1", "2026-11-14", booking_id="B"),
                                         post("u2", "2026-11-14")])
    with pytest.raises(InputError, match=r"^line 2: template post_event_neutral_emotion needs"):
        import_schedule(ctx, path)
    assert rows(ctx) == []


def test_duplicates_inside_the_file_and_against_the_database(ctx: Context, tmp_path: Path
                                                            ) -> None:
    existing = schedule_post_event(ctx, post_event_request(
        ctx.settings.timezone, user_id="u1", conversation_id="c1",
        event_date="2026-11-14T18:00"))
    add_conversation(ctx, "c5", "u5", [0.5], at=ctx.now() - timedelta(days=40))
    scan_inactive(ctx)  # u5 is re-engaged for this period
    path = jsonl(tmp_path / "in.jsonl", [
        post("u1", "2026-11-15T12:00"),  # line 1: within a day of the existing one
        post("u2", "2026-11-20T10:00"),  # line 2: new
        post("u2", "2026-11-21T10:00"),  # line 3: within a day of line 2
        post("u2", "2026-11-23T10:00"),  # line 4: far enough: new
        {"type": "reengagement", "user_id": "u5"},  # line 5: already this period
        {"type": "reengagement", "user_id": "u6"},  # line 6: new
        {"type": "reengagement", "user_id": "u6"},  # line 7: same as line 6
    ])
    result = import_schedule(ctx, path)
    assert result.scheduled == 3
    dups = {d.line: d for d in result.duplicates}
    assert set(dups) == {1, 3, 5, 7}
    assert dups[1].existing_id == existing.id
    new_ids = {r["id"] for r in rows(ctx) if r["user_id"] in ("u2", "u6")}
    assert dups[3].existing_id in new_ids and dups[7].existing_id in new_ids
    again = import_schedule(ctx, path)  # idempotent: every row is now a duplicate
    assert (again.scheduled, len(again.duplicates)) == (0, 7)


def test_cap_refuses_the_whole_file(make_ctx: MakeCtx, tmp_path: Path) -> None:
    ctx = make_ctx(FOLLOWUP_MAX_PENDING_PER_USER="3")
    schedule_post_event(ctx, post_event_request(
        ctx.settings.timezone, user_id="u1", conversation_id="c1", event_date="2026-10-01"))
    before = rows(ctx)
    path = jsonl(tmp_path / "in.jsonl", [
        post("u2", "2026-11-01"), post("u1", "2026-11-05"), post("u1", "2026-11-10"),
        post("u1", "2026-11-15")])
    with pytest.raises(RuleViolation, match=r"^line 4: the user would have more than 3"):
        import_schedule(ctx, path)
    assert rows(ctx) == before


def test_large_import_is_batched(ctx: Context, tmp_path: Path) -> None:
    records = [post(f"u{i}", "2026-11-14T18:00", conv=f"c{i}") for i in range(6000)]
    seen: list[tuple[int, int | None]] = []
    path = jsonl(tmp_path / "big.jsonl", records)
    result = import_schedule(ctx, path, progress=lambda d, t: seen.append((d, t)))
    assert result.scheduled == 6000
    # progress counts the bytes of the file read so far, chunk by chunk; once all is read
    # the rules and the insert still run, so the bar pulses (total unknown) instead of
    # standing full as if the import had hung (issue 11 problem 5)
    size = Path(path).stat().st_size
    assert seen[-2] == (size, size) and len(seen) > 2
    assert seen[-1] == (size, None)
    assert all(total == size for _, total in seen[:-1])
    assert len(rows(ctx)) == 6000


def test_unreadable_file_and_unknown_format(ctx: Context, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        import_schedule(ctx, str(tmp_path / "missing.jsonl"))
    with pytest.raises(InputError, match="format"):
        import_schedule(ctx, jsonl(tmp_path / "a.jsonl", []), fmt="xml")


# --- conversation history --------------------------------------------------------------

def message(conv: str, user: str, role: str, score: float | None, at: str,
            **extra: object) -> dict[str, object]:
    return {"conversation_id": conv, "user_id": user, "role": role, "content": "hi",
            "emotion_score": score, "created_at": at, **extra}


def test_history_import_feeds_templates_and_scanning(ctx: Context, tmp_path: Path) -> None:
    path = jsonl(tmp_path / "h.jsonl", [
        message("c1", "u1", "user", 0.9, "2026-10-01T10:00:00Z", title="Party"),
        message("c1", "u1", "assistant", None, "2026-10-01T10:01:00Z"),
        message("c1", "u1", "user", 0.8, "2026-10-01T10:02:00Z"),
        message("c2", "u2", "user", 0.1, "2026-11-19T10:00:00Z"),
    ])
    result = import_history(ctx, path)
    assert (result.conversations_created, result.messages_imported) == (2, 4)
    again = import_history(ctx, path)  # derived ids: nothing doubled
    assert (again.conversations_created, again.messages_imported,
            again.messages_skipped) == (0, 0, 4)
    scan = scan_inactive(ctx)
    assert scan.scheduled == 1  # u1, 50 days; u2 wrote yesterday
    [row] = rows(ctx)
    assert (row["user_id"], row["template_id"]) == ("u1", "reengagement_high_emotion")
    assert row["trigger_data"] == {"days_inactive": 50}


@pytest.mark.parametrize(("bad", "match"), [
    (message("c1", "u1", "user", 1.5, "2026-10-01T10:00"), "emotion_score"),
    (message("c1", "u1", "robot", 0.5, "2026-10-01T10:00"), "role"),
    (message("c1", "u1", "user", 0.5, "last week"), "created_at"),
    (message("c1", "u2", "user", 0.5, "2026-10-01T10:00"), "belongs to user"),
    ({"conversation_id": "c1"}, "user_id"),
])
def test_history_bad_line_writes_nothing(ctx: Context, tmp_path: Path,
                                         bad: dict[str, object], match: str) -> None:
    path = jsonl(tmp_path / "h.jsonl", [message("c1", "u1", "user", 0.5, "2026-10-01T09:00"),
                                        bad,
                                        message("c3", "u3", "user", 0.5, "2026-10-01T09:00")])
    with pytest.raises(InputError, match=rf"^line 2: .*{match}"):
        import_history(ctx, path)
    from followup_cli.store import scanning

    with ctx.db.transaction(readonly=True) as conn:
        assert scanning.last_activity_many(conn, ["u1", "u3"]) == {}


def test_awkward_text_is_stored_verbatim(ctx: Context, tmp_path: Path) -> None:
    awkward = 'He said "hi", then\nleft; \\N \\ ä 🎉 \'quoted\' ,,'
    path = jsonl(tmp_path / "in.jsonl", [
        post('u"1,', "2026-11-14T18:00", conv="c\\N", booking_id="\\N",
             custom_message=awkward),
        {"type": "reengagement", "user_id": "u2"},  # no conversation at all: stored as ''
    ])
    assert import_schedule(ctx, path).scheduled == 2
    got = {r["user_id"]: r for r in rows(ctx)}
    row = got['u"1,']
    assert row["conversation_id"] == "c\\N"
    assert row["trigger_data"]["custom_message"] == awkward
    assert row["trigger_data"]["booking_id"] == "\\N"
    assert row["executed_at"] is None and row["retry_count"] == 0
    assert got["u2"]["conversation_id"] == ""
    assert got["u2"]["trigger_data"] == {"days_inactive": 30}

"""Encryption at rest end to end (issue 10), on both databases: every creator stores the
message and the custom message sealed, plain SQL shows no plaintext, the delivered payload
carries the exact text, rotation leaves no row under an old key, and a row no key opens
fails alone."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from followup_cli.api import FollowUps
from followup_cli.crypto import key_id
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.service.delivery import PassOptions, run_due
from followup_cli.service.importing import import_rows, rows_from_text
from followup_cli.service.maintenance import retry
from followup_cli.service.reencrypt import reencrypt
from followup_cli.service.requests import post_event_request
from followup_cli.service.scanning import scan_inactive
from followup_cli.service.scheduling import schedule_post_event
from followup_cli.service.senders import FileSender, MemorySender
from followup_cli.settings import normalize_database_url
from tests.conftest import MakeCtx
from tests.helpers import add_conversation

KEY_A = base64.urlsafe_b64encode(b"a" * 32).decode()
KEY_B = base64.urlsafe_b64encode(b"b" * 32).decode()
SECRET_NOTE = "Ask for table 7 (Mrs Okafor)"


def raw(db_url: str) -> list[dict[str, Any]]:
    """The table as plain SQL sees it (what a stolen backup shows)."""
    engine = sa.create_engine(normalize_database_url(db_url))
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.text(
            "SELECT id, message_content, CAST(trigger_data AS TEXT) AS data, status "
            "FROM scheduled_followups")).mappings()]
    engine.dispose()
    return rows


def test_every_creator_stores_sealed_and_delivery_sends_the_exact_text(
        make_ctx: MakeCtx, db_url: str) -> None:
    ctx = make_ctx(FOLLOWUP_ENCRYPTION_KEY=KEY_A, FOLLOWUP_TEMPLATES_FILE="")
    add_conversation(ctx, "c-quiet", "quiet", [0.2], at=ctx.now().replace(year=2026, month=9))
    single = schedule_post_event(ctx, post_event_request(
        ctx.settings.timezone, user_id="u1", conversation_id="c1",
        event_date="2026-11-14T18:00", custom_message=SECRET_NOTE))
    import_rows(ctx, rows_from_text(json.dumps({
        "type": "post_event", "user_id": "u2", "conversation_id": "c2",
        "event_date": "2026-11-15T18:00", "custom_message": SECRET_NOTE}) + "\n",
        ctx.settings.timezone))
    assert scan_inactive(ctx).scheduled == 1
    with FollowUps(db_url, encryption_key=KEY_A) as api:
        api.schedule_post_event("u3", "c3", "2026-11-16T18:00", custom_message=SECRET_NOTE)
    stored = raw(db_url)
    assert len(stored) == 4
    prefix = f"fernet:{key_id(KEY_A)}:"
    for row in stored:
        assert row["message_content"].startswith(prefix), row
        assert " " not in row["message_content"] and SECRET_NOTE not in row["data"]
    # a failed one put back by retry stays sealed
    with ctx.db.transaction() as conn:
        conn.execute(sa.update(sf).where(sf.c.id == single.id).values(status="failed"))
    assert retry(ctx, [single.id]).retried == [single.id]
    assert raw(db_url)[0]["message_content"].startswith("fernet:")

    sender = MemorySender()
    result = run_due(ctx, PassOptions(), sender=sender)
    assert result.executed == 4
    by_user = {p["user_id"]: p for p in sender.payloads}
    assert by_user["u1"]["message"].startswith("Hi") and "November 14, 2026" in \
        by_user["u1"]["message"]
    assert by_user["u1"]["trigger_data"]["custom_message"] == SECRET_NOTE
    assert by_user["u2"]["trigger_data"]["custom_message"] == SECRET_NOTE
    assert "days" in by_user["quiet"]["message"]


def test_without_a_key_messages_are_stored_as_they_are(make_ctx: MakeCtx, db_url: str) -> None:
    ctx = make_ctx()
    schedule_post_event(ctx, post_event_request(
        ctx.settings.timezone, user_id="u1", conversation_id="c1",
        event_date="2026-11-14T18:00", custom_message=SECRET_NOTE))
    [row] = raw(db_url)
    assert row["message_content"].startswith("Hi") and SECRET_NOTE in row["data"]


def test_rotation_then_delivery_and_a_file_receiver(make_ctx: MakeCtx, db_url: str,
                                                  tmp_path: Path) -> None:
    old = make_ctx(FOLLOWUP_ENCRYPTION_KEY=KEY_A)
    schedule_post_event(old, post_event_request(
        old.settings.timezone, user_id="u1", conversation_id="c1",
        event_date="2026-11-14T18:00", custom_message=SECRET_NOTE))
    new = make_ctx(FOLLOWUP_ENCRYPTION_KEY=f"{KEY_B},{KEY_A}")
    assert reencrypt(new).rewritten == 1
    [row] = raw(db_url)
    assert row["message_content"].startswith(f"fernet:{key_id(KEY_B)}:")
    assert key_id(KEY_A) not in row["message_content"] + row["data"]
    out = tmp_path / "delivered.jsonl"
    sender = FileSender(str(out))
    assert run_due(new, sender=sender).executed == 1
    sender.close()
    [line] = out.read_text().splitlines()
    delivered = json.loads(line)
    assert delivered["trigger_data"]["custom_message"] == SECRET_NOTE
    assert "November 14, 2026" in delivered["message"]


def test_a_row_no_key_opens_fails_alone(make_ctx: MakeCtx, db_url: str) -> None:
    sealed_with_a = make_ctx(FOLLOWUP_ENCRYPTION_KEY=KEY_A)
    for user in ("u1", "u2"):
        schedule_post_event(sealed_with_a, post_event_request(
            sealed_with_a.settings.timezone, user_id=user, conversation_id="c",
            event_date="2026-11-14T18:00"))
    with sealed_with_a.db.transaction() as conn:  # u2's row is plain (the original app)
        conn.execute(sa.update(sf).where(sf.c.user_id == "u2").values(message_content="plain"))
    only_b = make_ctx(FOLLOWUP_ENCRYPTION_KEY=KEY_B)
    sender = MemorySender()
    result = run_due(only_b, sender=sender)
    assert (result.executed, result.failed) == (1, 1)
    assert [p["message"] for p in sender.payloads] == ["plain"]
    failed = next(r for r in raw(db_url) if r["status"] == "failed")
    with only_b.db.transaction(readonly=True) as conn:
        error = conn.execute(sa.select(sf.c.error_message).where(
            sf.c.id == failed["id"])).scalar_one()
    assert key_id(KEY_A) in error and "not in FOLLOWUP_ENCRYPTION_KEY" in error

    # no key at all: a missing setting, retried rather than failed for good
    schedule_post_event(sealed_with_a, post_event_request(
        sealed_with_a.settings.timezone, user_id="u3", conversation_id="c",
        event_date="2026-11-14T18:00"))
    no_key = make_ctx()
    result = run_due(no_key, sender=MemorySender())
    assert (result.retried, result.failed) == (1, 0)
    assert "FOLLOWUP_ENCRYPTION_KEY is not set" in result.problems[0]["error"]

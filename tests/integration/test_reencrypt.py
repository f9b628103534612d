"""`db reencrypt`: rotation leaves no row under an old key, plain rows get sealed, reruns
rewrite nothing, locked rows are skipped (not waited for), undecryptable rows are named."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from followup_cli.crypto import MessageCipher, key_id
from followup_cli.errors import SettingsError
from followup_cli.service.context import Context
from followup_cli.service.reencrypt import reencrypt
from followup_cli.settings import load_settings, normalize_database_url
from tests.helpers import add_followup

KEY_A = base64.urlsafe_b64encode(b"A" * 32).decode()
KEY_B = base64.urlsafe_b64encode(b"B" * 32).decode()
KEY_C = base64.urlsafe_b64encode(b"C" * 32).decode()
KID_A, KID_B = key_id(KEY_A), key_id(KEY_B)


def _stored(db_url: str) -> dict[str, tuple[Any, Any]]:
    """id -> (message_content, custom_message) as plain SQL sees them."""
    engine = sa.create_engine(normalize_database_url(db_url))
    custom = ("trigger_data->>'custom_message'" if db_url.startswith("postgresql")
              else "json_extract(trigger_data, '$.custom_message')")
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f"SELECT id, message_content, {custom} FROM scheduled_followups ORDER BY id"))
        out = {r[0]: (r[1], r[2]) for r in rows}
    engine.dispose()
    return out


def _seed(ctx: Context, cipher: MessageCipher, n: int, prefix: str) -> dict[str, str]:
    """n follow-ups sealed by `cipher` as the admission path stores them; returns the texts."""
    texts = {}
    for i in range(n):
        fid = f"{prefix}{i:03d}"
        text = f"Hi {prefix} {i}: ünïcödé ✓ " + "x" * i
        add_followup(ctx, id=fid, user_id=f"u{prefix}{i}", message_content=cipher.seal(text),
                     trigger_data=cipher.seal_trigger_data(
                         {"event_date": "2026-11-14", "custom_message": f"custom {i}"}))
        texts[fid] = text
    return texts


def test_rotation_leaves_no_row_under_an_old_key(make_ctx, db_url: str) -> None:
    texts = _seed(make_ctx(FOLLOWUP_ENCRYPTION_KEY=KEY_A), MessageCipher([KEY_A]), 7, "a")
    # Rows the original application wrote, in plain text, and one without any text.
    texts |= _seed(make_ctx(), MessageCipher(), 3, "p")
    add_followup(make_ctx(), id="z-empty", message_content=None, trigger_data={})
    before = _stored(db_url)
    assert all(m.startswith(f"fernet:{KID_A}:") for i, (m, _) in before.items()
               if i.startswith("a"))

    rotated = make_ctx(FOLLOWUP_ENCRYPTION_KEY=f"{KEY_B},{KEY_A}")
    result = reencrypt(rotated, batch_size=3)
    assert (result.total, result.rewritten, result.already_current) == (10, 10, 0)
    assert result.batches == 4 and result.complete and result.key_id == KID_B

    after = _stored(db_url)
    for fid, (message, custom) in after.items():
        if fid == "z-empty":
            assert (message, custom) == (None, None)
            continue
        assert message.startswith(f"fernet:{KID_B}:") and custom.startswith(f"fernet:{KID_B}:")
    # Only the new key is needed now, and every text is what was stored.
    only_b = MessageCipher([KEY_B])
    assert {fid: only_b.open(m) for fid, (m, _) in after.items() if m} == texts

    again = reencrypt(rotated, batch_size=3)
    assert (again.rewritten, again.already_current, again.examined) == (0, 10, 0)
    assert _stored(db_url) == after


def test_dry_run_counts_and_writes_nothing(make_ctx, db_url: str) -> None:
    _seed(make_ctx(), MessageCipher(), 4, "p")
    before = _stored(db_url)
    result = reencrypt(make_ctx(FOLLOWUP_ENCRYPTION_KEY=KEY_A), dry_run=True)
    # not complete: those four still need their old state, so no key may be dropped yet
    assert result.dry_run and result.rewritten == 4 and not result.complete
    assert _stored(db_url) == before
    reencrypt(make_ctx(FOLLOWUP_ENCRYPTION_KEY=KEY_A))
    done = reencrypt(make_ctx(FOLLOWUP_ENCRYPTION_KEY=KEY_A), dry_run=True)
    assert done.rewritten == 0 and done.complete


def test_a_row_no_key_opens_is_named_and_left_as_it_is(make_ctx, db_url: str) -> None:
    _seed(make_ctx(), MessageCipher([KEY_C]), 2, "c")
    _seed(make_ctx(), MessageCipher([KEY_A]), 2, "a")
    before = _stored(db_url)
    result = reencrypt(make_ctx(FOLLOWUP_ENCRYPTION_KEY=f"{KEY_B},{KEY_A}"))
    assert result.undecryptable == 2 and result.undecryptable_ids == ["c000", "c001"]
    assert result.rewritten == 2 and not result.complete
    after = _stored(db_url)
    assert after["c000"] == before["c000"] and after["c001"] == before["c001"]


def test_without_a_key_it_refuses(make_ctx) -> None:
    with pytest.raises(SettingsError, match="FOLLOWUP_ENCRYPTION_KEY is not set"):
        reencrypt(make_ctx())


@pytest.mark.postgres
def test_a_locked_row_is_skipped_not_waited_for(pg_url: str, pg_engine: sa.Engine) -> None:
    ctx = Context(load_settings({"DATABASE_URL": pg_url, "FOLLOWUP_ENCRYPTION_KEY": KEY_A}))
    _seed(ctx, MessageCipher(), 5, "p")
    held = threading.Event()
    release = threading.Event()

    def hold_one_row() -> None:  # another session, e.g. a pass writing back an outcome
        with pg_engine.begin() as conn:
            conn.execute(sa.text(
                "SELECT id FROM scheduled_followups WHERE id = 'p002' FOR UPDATE"))
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold_one_row)
    holder.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        result = reencrypt(ctx, batch_size=2)
        elapsed = time.monotonic() - started
    finally:
        release.set()
        holder.join()
    assert elapsed < 5, f"reencrypt waited {elapsed:.1f} s for a locked row"
    assert result.skipped_locked == 1 and result.locked_ids == ["p002"]
    assert result.rewritten == 4 and not result.complete
    assert not _stored(pg_url)["p002"][0].startswith("fernet:")

    again = reencrypt(ctx)  # the lock is gone: the rerun finishes the job
    assert again.rewritten == 1 and again.complete
    assert all(m.startswith(f"fernet:{KID_A}:") for m, _ in _stored(pg_url).values())
    ctx.close()

"""MessageCipher: sealing and opening message text, key rotation, and the key setting."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from followup_cli.crypto import SEALED, MessageCipher, is_sealed, key_id, sealed_key_id
from followup_cli.errors import DecryptError, ExitCode, SettingsError
from followup_cli.settings import load_settings

# Fixed keys (Fernet keys are 32 url-safe base64 bytes), so Hypothesis runs are repeatable.
KEY_A = base64.urlsafe_b64encode(bytes(range(32))).decode()
KEY_B = base64.urlsafe_b64encode(bytes(range(100, 132))).decode()
KEY_C = base64.urlsafe_b64encode(bytes(range(200, 232))).decode()
A, B, BA = MessageCipher([KEY_A]), MessageCipher([KEY_B]), MessageCipher([KEY_B, KEY_A])
PLAIN = MessageCipher()

# Any text a follow-up may carry: unicode of every plane, empty, and beyond 2,000 chars.
TEXTS = st.one_of(st.text(), st.text(min_size=2000, max_size=2500),
                  st.text(alphabet=st.characters(codec="utf-8"), max_size=50))


@given(TEXTS)
def test_seal_then_open_round_trips_any_text(text: str) -> None:
    stored = A.seal(text)
    assert stored != text and stored.startswith(f"fernet:{key_id(KEY_A)}:")
    if len(text) >= 16:
        assert text not in stored
    assert A.open(stored) == text


@given(TEXTS)
def test_rotation_opens_old_tokens_and_seals_with_the_new_key(text: str) -> None:
    old = A.seal(text)
    assert BA.open(old) == text  # new key first, old key kept: old rows still open
    assert BA.needs_rewrite(old)
    new = BA.reseal(old)
    assert sealed_key_id(new) == key_id(KEY_B) and not BA.needs_rewrite(new)
    assert B.open(new) == text  # the old key can go once every row is resealed


@given(st.text())
def test_plain_text_passes_through_open_unchanged(text: str) -> None:
    if SEALED.fullmatch(text):  # only a value shaped exactly like a token is not plain
        return
    assert A.open(text) == text
    assert PLAIN.open(text) == text
    assert A.needs_rewrite(text)  # a key is set: plain rows are what reencrypt seals


@pytest.mark.parametrize("text", ["fernet:", "fernet:hello", "fernet:deadbeef:hello",
                                  "fernet:DEADBEEF:gAAAAAxyz", "Fernet: a note"])
def test_text_that_merely_starts_with_the_prefix_is_plain(text: str) -> None:
    assert not is_sealed(text)
    assert A.open(text) == text


def test_without_a_key_seal_is_the_identity_and_none_stays_none() -> None:
    assert PLAIN.seal("hello") == "hello"
    assert not PLAIN.enabled and PLAIN.current_prefix is None
    assert A.seal(None) is None and A.open(None) is None
    assert not PLAIN.needs_rewrite("hello")


def test_seal_leaves_an_already_sealed_value_as_it_is() -> None:
    once = A.seal("hi")
    assert A.seal(once) == once
    assert BA.seal(once) == once  # wiring seal twice never seals twice


def test_open_without_a_key_is_a_clear_error_without_content_or_key() -> None:
    stored = A.seal("TOPSECRET message")
    with pytest.raises(DecryptError) as info:
        PLAIN.open(stored)
    text = str(info.value)
    assert "FOLLOWUP_ENCRYPTION_KEY is not set" in text and key_id(KEY_A) in text
    assert "TOPSECRET" not in text and KEY_A not in text and stored not in text
    assert info.value.no_key and info.value.exit_code == ExitCode.INVALID


def test_a_value_no_listed_key_opens_is_an_error_never_garbage() -> None:
    stored = A.seal("TOPSECRET")
    with pytest.raises(DecryptError, match="not in FOLLOWUP_ENCRYPTION_KEY") as info:
        B.open(stored)
    assert info.value.exit_code == ExitCode.FAILURE and not info.value.no_key
    # A key id that matches but a token that does not verify (damaged, or forged).
    kid = key_id(KEY_A)
    forged = f"fernet:{kid}:" + B.seal("x").split(":", 2)[2]
    with pytest.raises(DecryptError, match="damaged"):
        A.open(forged)
    with pytest.raises(DecryptError):
        A.open(stored[:-8] + "AAAAAAA=")


@given(st.dictionaries(st.sampled_from(["event_date", "booking_id", "custom_message", "x"]),
                       st.one_of(st.text(), st.integers(), st.none())))
def test_trigger_data_seals_only_the_custom_message(data: dict) -> None:
    original = dict(data)
    sealed = BA.seal_trigger_data(data)
    for key, value in data.items():
        if key == "custom_message" and isinstance(value, str):
            assert is_sealed(sealed[key])
        else:
            assert sealed[key] == value  # event_date, booking_id... stay plain for SQL
    assert BA.open_trigger_data(sealed) == data
    assert not BA.trigger_data_needs_rewrite(sealed)
    assert data == original  # the input is not modified


def test_rows_seal_and_open_as_the_admission_path_and_delivery_use_them() -> None:
    row = {"id": "f1", "message_content": "Hello Ada", "template_id": "t",
           "trigger_data": {"event_date": "2026-11-14", "custom_message": "Bring the cake"}}
    stored = BA.seal_row(row)
    assert is_sealed(stored["message_content"])
    assert is_sealed(stored["trigger_data"]["custom_message"])
    assert stored["trigger_data"]["event_date"] == "2026-11-14" and stored["id"] == "f1"
    assert row["message_content"] == "Hello Ada"  # a copy
    assert BA.open_row(stored) == row and B.open_row(stored) == row
    with pytest.raises(DecryptError):
        A.open_row(stored)  # sealed with B: A alone cannot open it
    bare = {"id": "f2", "message_content": None, "trigger_data": None}
    assert BA.seal_row(bare) == bare and BA.open_row(bare) == bare
    assert PLAIN.seal_row(row) == row and PLAIN.open_row(row) == row


def test_cipher_repr_shows_key_ids_only() -> None:
    assert KEY_A not in repr(A) and key_id(KEY_A) in repr(A)
    settings = load_settings({"FOLLOWUP_ENCRYPTION_KEY": KEY_A, "DATABASE_URL": "sqlite://"})
    assert KEY_A not in repr(settings)


# --- the setting --------------------------------------------------------------------------

def test_setting_takes_several_keys_first_one_encrypts() -> None:
    s = load_settings({"FOLLOWUP_ENCRYPTION_KEY": f" {KEY_B} , {KEY_A}",
                       "DATABASE_URL": "sqlite://"})
    assert s.encryption_keys == (KEY_B, KEY_A)
    assert MessageCipher.from_settings(s).current_key_id == key_id(KEY_B)
    assert load_settings({"DATABASE_URL": "sqlite://"}).encryption_keys == ()


@pytest.mark.parametrize(("raw", "position"), [
    ("not-a-key", "key 1 of 1"),
    (f"{KEY_A},{KEY_B[:-2]}", "key 2 of 2"),
    (f"{KEY_A},,{KEY_B}", "key 2 of 3"),
    (f"{KEY_A},", "key 2 of 2"),
    (f"{KEY_A[:-1]}!", "key 1 of 1"),  # Fernet would drop the '!' and accept it
    (base64.urlsafe_b64encode(bytes(31)).decode(), "key 1 of 1"),
])
def test_a_bad_key_names_its_position_and_never_echoes_key_material(raw: str,
                                                                   position: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"FOLLOWUP_ENCRYPTION_KEY": raw, "DATABASE_URL": "sqlite://"})
    text = str(info.value)
    assert text.startswith("FOLLOWUP_ENCRYPTION_KEY: ") and position in text
    for part in raw.split(","):
        if len(part) > 3:
            assert part not in text and part[:10] not in text


def test_importing_the_cipher_does_not_import_cryptography() -> None:
    """Start-up: only commands that seal or open pay for cryptography."""
    code = ("import sys; from followup_cli.service.context import Context; "
            "from followup_cli.crypto import MessageCipher; MessageCipher([]).seal('x'); "
            "print('cryptography' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"

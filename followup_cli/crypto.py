"""Encryption at rest of message text (FOLLOWUP_ENCRYPTION_KEY).

`message_content` and the `custom_message` inside `trigger_data` are stored as
`fernet:<kid>:<token>`: a Fernet token (AES-128-CBC + HMAC-SHA256, from the `cryptography`
package) behind a prefix and the id of the key that sealed it (the first 8 hex digits of the
SHA-256 of the key's 32 bytes). The prefix lets plain SQL tell sealed from plain rows
(`message_content NOT LIKE 'fernet:<kid>:%'` finds every row `db reencrypt` must rewrite),
and lets rows the original application wrote in plain text pass through `open` untouched.

Without a key, `seal` is the identity (plain text, as before) and `open` of a sealed value
raises DecryptError: a sealed message is never handed on as if it were text.

`cryptography` costs ~30 ms of start-up, so it is imported on the first seal or open only.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from followup_cli.errors import DecryptError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

    from followup_cli.settings import Settings

PREFIX = "fernet:"
# A Fernet token is url-safe base64 of 0x80 + a 64-bit timestamp + ...: it starts with
# "gAAAAA" until the year 4000. Requiring it keeps ordinary text that merely begins with
# "fernet:" plain.
SEALED = re.compile(r"fernet:([0-9a-f]{8}):(gAAAAA[A-Za-z0-9_-]+={0,2})")
CUSTOM_MESSAGE = "custom_message"  # the one trigger_data field that is sealed


def key_id(key: str) -> str:
    """The short, public id of a Fernet key (its text as in FOLLOWUP_ENCRYPTION_KEY)."""
    return hashlib.sha256(base64.urlsafe_b64decode(key)).hexdigest()[:8]


def sealed_key_id(value: object) -> str | None:
    """The id of the key that sealed `value`, or None when it is plain text."""
    if not isinstance(value, str):
        return None
    found = SEALED.fullmatch(value)
    return None if found is None else found.group(1)


def is_sealed(value: object) -> bool:
    return sealed_key_id(value) is not None


class MessageCipher:
    """Seals and opens message text with the keys of FOLLOWUP_ENCRYPTION_KEY.

    The first key seals; every key opens. Safe to share between threads.
    """

    def __init__(self, keys: Sequence[str] = ()) -> None:
        self._keys = tuple(keys)
        self.key_ids: tuple[str, ...] = tuple(key_id(k) for k in self._keys)
        self._fernets: dict[str, Fernet] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> MessageCipher:
        return cls(settings.encryption_keys)

    def __repr__(self) -> str:  # never the keys themselves
        return f"MessageCipher(key_ids={list(self.key_ids)!r})"

    @property
    def enabled(self) -> bool:
        """A key is set: new messages are sealed."""
        return bool(self._keys)

    @property
    def current_key_id(self) -> str | None:
        return self.key_ids[0] if self._keys else None

    @property
    def current_prefix(self) -> str | None:
        """What every value sealed with the first key starts with (for SQL LIKE)."""
        return None if not self._keys else f"{PREFIX}{self.key_ids[0]}:"

    def _by_id(self) -> dict[str, Fernet]:
        with self._lock:
            if self._fernets is None:
                from cryptography.fernet import Fernet

                fernets: dict[str, Fernet] = {}
                for kid, key in zip(self.key_ids, self._keys, strict=True):
                    fernets.setdefault(kid, Fernet(key.encode("ascii")))
                self._fernets = fernets
            return self._fernets

    # --- one value ----------------------------------------------------------------------

    @overload
    def seal(self, text: str) -> str: ...
    @overload
    def seal(self, text: None) -> None: ...

    def seal(self, text: str | None) -> str | None:
        """The stored form of `text`: sealed with the first key, or `text` itself without a
        key. None stays None, and a value that is already sealed is left as it is."""
        if text is None or not self._keys or is_sealed(text):
            return text
        kid = self.key_ids[0]
        token = self._by_id()[kid].encrypt(text.encode("utf-8"))
        return f"{PREFIX}{kid}:{token.decode('ascii')}"

    @overload
    def open(self, stored: str) -> str: ...
    @overload
    def open(self, stored: None) -> None: ...

    def open(self, stored: str | None) -> str | None:
        """The text of a stored value. Plain text (and None) comes back unchanged; a sealed
        value no listed key opens raises DecryptError (its message names the key id, never
        a key or the content)."""
        if stored is None:
            return None
        found = SEALED.fullmatch(stored)
        if found is None:
            return stored
        kid, token = found.group(1), found.group(2)
        if not self._keys:
            raise DecryptError(
                f"the message is encrypted (key id {kid}) and FOLLOWUP_ENCRYPTION_KEY is not "
                "set", no_key=True)
        fernet = self._by_id().get(kid)
        if fernet is None:
            raise DecryptError(
                f"the message is encrypted with key id {kid}, which is not in "
                f"FOLLOWUP_ENCRYPTION_KEY (key ids: {', '.join(self.key_ids)})")
        from cryptography.fernet import InvalidToken

        try:
            return fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            raise DecryptError(
                f"the message encrypted with key id {kid} is damaged: it does not "
                "decrypt") from None

    def needs_rewrite(self, stored: str | None) -> bool:
        """True when a key is set and `stored` is text not sealed with the first key
        (plain text included): what `followup db reencrypt` rewrites."""
        if stored is None or not self._keys:
            return False
        return sealed_key_id(stored) != self.key_ids[0]

    # --- trigger_data ---------------------------------------------------------------------

    def seal_trigger_data(self, data: Mapping[str, Any] | None) -> dict[str, Any]:
        """A copy of `data` with its custom_message sealed (other fields stay plain)."""
        out = dict(data or {})
        if isinstance(out.get(CUSTOM_MESSAGE), str):
            out[CUSTOM_MESSAGE] = self.seal(out[CUSTOM_MESSAGE])
        return out

    def open_trigger_data(self, data: Mapping[str, Any] | None) -> dict[str, Any]:
        """A copy of `data` with its custom_message opened (DecryptError as `open`)."""
        out = dict(data or {})
        if isinstance(out.get(CUSTOM_MESSAGE), str):
            out[CUSTOM_MESSAGE] = self.open(out[CUSTOM_MESSAGE])
        return out

    def trigger_data_needs_rewrite(self, data: Mapping[str, Any] | None) -> bool:
        value = (data or {}).get(CUSTOM_MESSAGE)
        return isinstance(value, str) and self.needs_rewrite(value)

    # --- whole rows (what admission writes and delivery reads) --------------------------

    def seal_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a scheduled_followups row with message_content and the custom_message
        in trigger_data sealed: what every creator stores."""
        out = dict(row)
        if "message_content" in out:
            out["message_content"] = self.seal(out["message_content"])
        if isinstance(out.get("trigger_data"), Mapping):
            out["trigger_data"] = self.seal_trigger_data(out["trigger_data"])
        return out

    def open_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a stored row with both texts opened (DecryptError as `open`): what a
        sender is given."""
        out = dict(row)
        if "message_content" in out:
            out["message_content"] = self.open(out["message_content"])
        if isinstance(out.get("trigger_data"), Mapping):
            out["trigger_data"] = self.open_trigger_data(out["trigger_data"])
        return out

    def reseal(self, stored: str | None) -> str | None:
        """`stored` sealed with the first key: opened and sealed again unless it already is
        (DecryptError as `open`)."""
        if stored is None or not self.needs_rewrite(stored):
            return stored
        return self.seal(self.open(stored))

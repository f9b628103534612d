"""`followup db reencrypt`: seal every stored message with the first key of
FOLLOWUP_ENCRYPTION_KEY (key rotation, or encrypting a database that was plain).

Rows are taken in keyset batches on id, each batch its own transaction. On PostgreSQL a
batch locks its rows with SKIP LOCKED, so it runs beside delivery passes without waiting
for them and without stalling them; a row another session holds is counted and left for
the next run. A row no listed key opens is counted, named, and left as it is. Running it
again rewrites only what is still not under the first key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from followup_cli.crypto import MessageCipher
from followup_cli.errors import DecryptError, InputError, SettingsError
from followup_cli.service.context import Context
from followup_cli.store import reencrypt as store

log = logging.getLogger("followup.reencrypt")

DEFAULT_BATCH = 500
MAX_BATCH = 10_000
LISTED_IDS = 20  # ids of locked and undecryptable rows named in the result

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class ReencryptResult:
    key_id: str
    dry_run: bool
    total: int = 0  # rows with message text
    examined: int = 0  # of them, not sealed with the first key when looked at
    rewritten: int = 0  # (would be, in a dry run) sealed with the first key now
    already_current: int = 0
    skipped_locked: int = 0
    undecryptable: int = 0
    batches: int = 0
    locked_ids: list[str] = field(default_factory=list)
    undecryptable_ids: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every row is under the first key: the old keys may go. Not after a dry run that
        found rows to rewrite (they still need their old key)."""
        return not (self.skipped_locked or self.undecryptable
                    or (self.dry_run and self.rewritten))

    def to_json(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "dry_run": self.dry_run, "total": self.total,
                "examined": self.examined, "rewritten": self.rewritten,
                "already_current": self.already_current,
                "skipped_locked": self.skipped_locked, "locked_ids": self.locked_ids,
                "undecryptable": self.undecryptable,
                "undecryptable_ids": self.undecryptable_ids, "batches": self.batches,
                "complete": self.complete}


def _resealed(cipher: MessageCipher, row: dict[str, Any]) -> dict[str, Any] | None:
    """The row with its texts sealed with the first key; None when nothing changes.
    DecryptError when a text is sealed with a key that is not listed (or damaged)."""
    message = row["message_content"]
    data = row["trigger_data"]
    new_message = cipher.reseal(message)
    new_data = data
    if isinstance(data, dict) and cipher.trigger_data_needs_rewrite(data):
        new_data = cipher.seal_trigger_data(cipher.open_trigger_data(data))
    if new_message == message and new_data is data:
        return None
    return {"id": row["id"], "message_content": new_message, "trigger_data": new_data}


def reencrypt(ctx: Context, *, batch_size: int = DEFAULT_BATCH, dry_run: bool = False,
              progress: Progress | None = None) -> ReencryptResult:
    """Seal every message_content and custom_message with the first key, in batches."""
    cipher = ctx.cipher
    prefix = cipher.current_prefix
    if prefix is None or cipher.current_key_id is None:
        raise SettingsError("FOLLOWUP_ENCRYPTION_KEY is not set: there is no key to "
                            "encrypt with")
    if not 1 <= batch_size <= MAX_BATCH:
        raise InputError(f"--batch-size: {batch_size} must be from 1 to {MAX_BATCH}")
    result = ReencryptResult(cipher.current_key_id, dry_run)
    with ctx.db.transaction(readonly=True) as conn:
        result.total, stale = store.count_texts(conn, prefix)
    result.already_current = result.total - stale
    after: str | None = None
    while True:
        with ctx.db.transaction(readonly=dry_run) as conn:
            ids = store.stale_ids_after(conn, prefix, after, batch_size)
            if not ids:
                break
            rows = store.texts_of(conn, ids, lock=not dry_run)
            found = {r["id"] for r in rows}
            missing = [i for i in ids if i not in found]
            locked = sorted(store.existing_ids(conn, missing))  # the others were deleted
            updates = []
            for row in rows:
                try:
                    new = _resealed(cipher, row)
                except DecryptError:
                    result.undecryptable += 1
                    if len(result.undecryptable_ids) < LISTED_IDS:
                        result.undecryptable_ids.append(row["id"])
                    continue
                if new is None:  # rewritten meanwhile, or a custom_message that is no text
                    result.already_current += 1
                else:
                    updates.append(new)
            if not dry_run:
                store.write_texts(conn, updates)
        after = ids[-1]
        result.batches += 1
        result.examined += len(ids)
        result.rewritten += len(updates)
        result.skipped_locked += len(locked)
        result.locked_ids += locked[:LISTED_IDS - len(result.locked_ids)]
        if progress is not None:
            progress(result.examined, max(stale, result.examined))
    log.info("reencrypt%s under key %s: %d rewritten, %d already current, %d locked, "
             "%d undecryptable, in %d batches", " (dry run)" if dry_run else "",
             result.key_id, result.rewritten, result.already_current, result.skipped_locked,
             result.undecryptable, result.batches)
    return result

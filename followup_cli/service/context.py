"""What every operation needs: validated settings, the database, and a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from followup_cli.crypto import MessageCipher
from followup_cli.db.engine import Database
from followup_cli.settings import Settings
from followup_cli.templates import TemplateSet
from followup_cli.timeutil import utcnow


@dataclass
class Context:
    settings: Settings
    # None: the database's clock (see `now`). Tests pass a fake one.
    clock: Callable[[], datetime] | None = None
    db: Database = field(default=None)  # type: ignore[assignment]
    # A read-only command (health, stats, list, show, serve, dry runs) never creates,
    # migrates or writes a database at an explicit DATABASE_URL (an empty or outdated
    # SQLite file is exit 4, "run followup db upgrade", as on PostgreSQL); the embedded
    # default is still created and migrated on first use, so a new user can try every
    # command.
    read_only: bool = False

    def __post_init__(self) -> None:
        if self.db is None:
            create = not self.read_only or self.settings.database_is_default
            self.db = Database.from_settings(self.settings, create=create)

    def now(self) -> datetime:
        """The current instant on the database's clock: due times, leases and every stamp
        are compared by passes on many hosts, and by the guide's SQL against NOW(), so they
        must not depend on how well this host's clock is set."""
        if self.clock is not None:
            return self.clock()
        return utcnow() + self.db.clock_offset()

    @cached_property
    def templates(self) -> TemplateSet:
        return self.settings.templates()

    @cached_property
    def cipher(self) -> MessageCipher:
        """Seals message text for storage and opens it for a reader (FOLLOWUP_ENCRYPTION_KEY)."""
        return MessageCipher.from_settings(self.settings)

    @property
    def seal(self) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        """What every creator applies to a row before it is written (admission calls it):
        the message fields sealed with the first key; None without a key (stored as given)."""
        return self.cipher.seal_row if self.cipher.enabled else None

    def close(self) -> None:
        self.db.dispose()

"""What every operation needs: validated settings, the database, and a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from followup_cli.crypto import MessageCipher
from followup_cli.db.engine import Database
from followup_cli.settings import Settings
from followup_cli.templates import TemplateSet
from followup_cli.timeutil import utcnow


@dataclass
class Context:
    settings: Settings
    clock: Callable[[], datetime] = utcnow
    db: Database = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.db is None:
            self.db = Database.from_settings(self.settings)

    def now(self) -> datetime:
        return self.clock()

    @cached_property
    def templates(self) -> TemplateSet:
        return self.settings.templates()

    @cached_property
    def cipher(self) -> MessageCipher:
        """Seals message text for storage and opens it for a reader (FOLLOWUP_ENCRYPTION_KEY)."""
        return MessageCipher.from_settings(self.settings)

    def close(self) -> None:
        self.db.dispose()

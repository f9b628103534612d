"""What every operation needs: validated settings, the database, and a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from followup_cli.db.engine import Database
from followup_cli.settings import Settings
from followup_cli.templates import TemplateSet
from followup_cli.timeutil import utcnow


@dataclass
class Context:
    settings: Settings
    clock: Callable[[], datetime] = utcnow
    db: Database = field(default=None)  # type: ignore[assignment]
    # A read-only command (health, stats, list, show, serve, dry runs) never creates a
    # database file or directory at an explicit DATABASE_URL; the embedded default is
    # still created on first use, so a new user can try every command.
    read_only: bool = False

    def __post_init__(self) -> None:
        if self.db is None:
            create = not self.read_only or self.settings.database_is_default
            self.db = Database.from_settings(self.settings, create=create)

    def now(self) -> datetime:
        return self.clock()

    @cached_property
    def templates(self) -> TemplateSet:
        return self.settings.templates()

    def close(self) -> None:
        self.db.dispose()

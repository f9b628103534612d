"""What every operation needs: validated settings, the database, and a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

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

    def __post_init__(self) -> None:
        if self.db is None:
            self.db = Database.from_settings(self.settings)

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

    @property
    def seal(self) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        """Encrypts a row's message fields before it is written; None: stored as given."""
        return None

    def close(self) -> None:
        self.db.dispose()

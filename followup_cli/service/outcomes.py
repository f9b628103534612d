"""Per-id outcomes of commands that act on several follow-ups (cancel, retry): each id gets
its own outcome and exit code, and the command exits with the highest of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from followup_cli.errors import ExitCode


@dataclass(frozen=True)
class IdOutcome:
    id: str
    outcome: str  # what happened to this id, e.g. cancelled, not_found
    status: str | None  # the follow-up's status after the command (None: no such id)
    exit_code: ExitCode

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "outcome": self.outcome, "status": self.status,
                "exit_code": int(self.exit_code)}


@dataclass
class IdOutcomes:
    outcomes: list[IdOutcome]

    @property
    def exit_code(self) -> ExitCode:
        return max((o.exit_code for o in self.outcomes), default=ExitCode.OK)

    def ids(self, outcome: str) -> list[str]:
        return [o.id for o in self.outcomes if o.outcome == outcome]

    def to_json(self) -> dict[str, Any]:
        return {"results": [o.to_json() for o in self.outcomes],
                "exit_code": int(self.exit_code)}

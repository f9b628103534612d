"""Options declared once and the glue every command shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from followup_cli.cli.output import Output
from followup_cli.settings import Settings, load_settings

if TYPE_CHECKING:
    from followup_cli.service.context import Context

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout, for scripts.")
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for cron and scripts).")
]


@dataclass
class GlobalState:
    """What the root callback collected: setting overrides and verbosity."""

    overrides: dict[str, str | None] = field(default_factory=dict)
    verbose: bool = False
    json_mode: bool = False  # so an error is reported as a JSON document too


STATE = GlobalState()


def settings(**overrides: Any) -> Settings:
    merged: dict[str, str | None] = dict(STATE.overrides)
    merged.update({k: None if v is None else str(v) for k, v in overrides.items()})
    return load_settings(overrides=merged)


def context(*, read_only: bool = False, **overrides: Any) -> Context:
    """The operation's context. `read_only`: the command only reads, so it must not create
    a database at an explicit DATABASE_URL (a missing one is exit 4 naming it)."""
    from followup_cli.service.context import Context

    return Context(settings(**overrides), read_only=read_only)


def output(json_mode: bool) -> Output:
    STATE.json_mode = json_mode
    return Output(json_mode=json_mode)


def exit_with(code: int) -> None:
    if code:
        raise typer.Exit(code)


def confirm(out: Output, question: str, yes: bool) -> bool:
    """Ask on a terminal; without one (cron, scripts) refuse unless --yes was given."""
    if yes:
        return True
    import sys

    from followup_cli.errors import InputError

    if not sys.stdin.isatty():
        raise InputError(f"{question.rstrip('?')}: refusing without --yes (no terminal to ask)")
    return bool(typer.confirm(question, default=False))

"""Options declared once and the glue every command shares."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from enum import StrEnum
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


# The schema's values, spelled here so that --help need not import SQLAlchemy (a test
# holds them equal to followup_cli.db.schema's).
class Status(StrEnum):
    pending = "pending"
    processing = "processing"
    executed = "executed"
    failed = "failed"
    cancelled = "cancelled"


class TriggerType(StrEnum):
    post_event = "post_event"
    reengagement = "reengagement"


def finite(value: float | None) -> float | None:
    """Click's FLOAT takes 'nan' and 'inf', which no range check refuses."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def positive(value: float) -> float:
    """A finite number above 0 (Typer has no open interval)."""
    if not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a number above 0")
    return value


TriggerTypeOpt = Annotated[TriggerType | None, typer.Option(
    "--trigger-type", metavar="TYPE", help="post_event or reengagement.",
    case_sensitive=False)]


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
    import os

    from followup_cli.redact import remember_environment

    remember_environment(os.environ, merged)  # before parsing: its errors are scrubbed too
    return load_settings(overrides=merged)


def context(*, read_only: bool = False, **overrides: Any) -> Context:
    """The operation's context. `read_only`: the command only reads, so it must not create
    a database at an explicit DATABASE_URL (a missing one is exit 4 naming it)."""
    from followup_cli.service.context import Context

    return Context(settings(**overrides), read_only=read_only)


def warn_if_embedded(current: Settings) -> None:
    """A pass on the embedded database under cron is most likely a missing or misspelled
    DATABASE_URL: say so on stderr every time (an explicit sqlite:/// URL is silent)."""
    if current.database_is_default and not sys.stdout.isatty():
        typer.echo(f"followup: warning: DATABASE_URL is not set: this pass uses the embedded "
                   f"database {current.database_display} (set DATABASE_URL; "
                   "DATABASE_URL=sqlite:///PATH silences this)", err=True)


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
    from followup_cli.errors import InputError

    if not sys.stdin.isatty():
        raise InputError(f"{question.rstrip('?')}: refusing without --yes (no terminal to ask)")
    return bool(typer.confirm(question, default=False))

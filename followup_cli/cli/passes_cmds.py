"""Commands registered on the root app (filled in by its capability)."""

from __future__ import annotations

import typer


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root app."""

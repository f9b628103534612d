"""Rendering: one JSON document with --json, rich tables on a terminal, plain lines for cron.

Rich is imported only when stdout is a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, default=_default, indent=2)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class Output:
    """Where a command's result goes. `terminal` decides rich or plain."""

    def __init__(self, *, json_mode: bool, stream: TextIO | None = None,
                 terminal: bool | None = None):
        self.json_mode = json_mode
        self.stream = stream or sys.stdout
        self.terminal = (self.stream.isatty() if terminal is None else terminal) and not json_mode
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False, soft_wrap=False)
        return self._console

    def json(self, document: Any) -> None:
        self.stream.write(dumps(document) + "\n")
        self.stream.flush()

    def line(self, text: str, *, style: str | None = None) -> None:
        """A line for humans (nothing in --json mode)."""
        if self.json_mode:
            return
        if self.terminal:
            from rich.text import Text

            self.console.print(Text(text, style=style or ""))
        else:
            self.stream.write(text + "\n")

    def fields(self, pairs: Sequence[tuple[str, Any]], *, title: str | None = None) -> None:
        """Key/value pairs: a two-column table on a terminal, `key: value` lines otherwise."""
        if self.json_mode:
            return
        if self.terminal:
            from rich.table import Table

            table = Table(title=title, show_header=False, box=None, pad_edge=False)
            table.add_column(style="bold")
            table.add_column()
            for key, value in pairs:
                table.add_row(key, cell(value))
            self.console.print(table)
            return
        if title:
            self.stream.write(f"{title}\n")
        for key, value in pairs:
            self.stream.write(f"{key}: {cell(value)}\n")

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
              title: str | None = None) -> None:
        """Rows: a rich table on a terminal; tab-separated lines with a header otherwise."""
        if self.json_mode:
            return
        if self.terminal:
            from rich.table import Table

            table = Table(title=title)
            for column in columns:
                table.add_column(column)
            for row in rows:
                table.add_row(*(cell(v) for v in row))
            self.console.print(table)
            return
        if title:
            self.stream.write(f"# {title}\n")
        self.stream.write("\t".join(columns) + "\n")
        for row in rows:
            self.stream.write("\t".join(cell(v) for v in row) + "\n")

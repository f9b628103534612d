"""Rendering: one JSON document with --json, rich tables on a terminal, plain lines for cron.

Rich is imported only when stdout is a terminal.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

# What long-running services report to: (done, total), total None while unknown.
ProgressCallback = Callable[[int, int | None], None]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, default=_default, indent=2)


def _ignore_progress(_done: int, _total: int | None) -> None:
    return None


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
                 terminal: bool | None = None, width: int | None = None):
        self.json_mode = json_mode
        self.stream = stream or sys.stdout
        self.terminal = (self.stream.isatty() if terminal is None else terminal) and not json_mode
        self.width = width  # None: the terminal's (or $COLUMNS)
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False, soft_wrap=False,
                                    force_terminal=self.terminal or None, width=self.width)
        return self._console

    @contextlib.contextmanager
    def progress(self, label: str, *, in_bytes: bool = False) -> Iterator[ProgressCallback]:
        """A callback for long work: a rich progress bar on a terminal (a pulsing one while
        the total is unknown), drawn from the first report and gone when the work ends;
        nothing without a terminal (cron) or with --json. `in_bytes`: the counts are bytes
        (of a file read), shown as such."""
        if not self.terminal:
            yield _ignore_progress
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        count = DownloadColumn() if in_bytes else MofNCompleteColumn()
        bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                       count, TimeElapsedColumn(), console=self.console, transient=True)
        task: list[Any] = []

        def update(done: int, total: int | None) -> None:
            if not task:
                bar.start()
                task.append(bar.add_task(label, total=total))
            elif total is None and bar.tasks[0].total is not None:
                # the total is no longer known (a second phase): rich's update() cannot
                # unset it, so a fresh task of the same label pulses instead, its clock
                # still counting from the start of the work
                started = bar.tasks[0].start_time
                bar.remove_task(task[0])
                task[0] = bar.add_task(label, total=None)
                bar.tasks[0].start_time = started
            bar.update(task[0], completed=done, total=total)

        try:
            yield update
        finally:
            if task:
                bar.stop()

    def json_stream(self, head: Mapping[str, Any], key: str, items: Iterable[Mapping[str, Any]],
                    tail: Callable[[int], Mapping[str, Any]]) -> int:
        """One JSON document written as it goes, for any number of items in constant
        memory: `head`'s fields, `key` with one item per line, then `tail(count)`'s fields.
        Returns the number of items."""
        write = self.stream.write
        write("{\n")
        for name, value in head.items():
            write(f"  {json.dumps(name)}: {json.dumps(value, ensure_ascii=False, default=_default)},\n")
        write(f"  {json.dumps(key)}: [")
        count = 0
        for item in items:
            write(",\n    " if count else "\n    ")
            write(json.dumps(item, ensure_ascii=False, default=_default))
            count += 1
        write("\n  ]" if count else "]")
        for name, value in tail(count).items():
            write(f",\n  {json.dumps(name)}: "
                  f"{json.dumps(value, ensure_ascii=False, default=_default)}")
        write("\n}\n")
        self.stream.flush()
        return count

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

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
              title: str | None = None, whole: Sequence[str] = (),
              first_line: Sequence[str] = (), optional: Sequence[str] = ()) -> None:
        """Rows: a rich table on a terminal; tab-separated lines with a header otherwise
        (streamed: rows are written as they come).

        On a terminal, `whole` columns (ids) are never shortened; `first_line` columns show
        their first line, cut with an ellipsis to the width left; `optional` columns (most
        wanted first) are shown only where they fit whole, and a note names the others.
        """
        if self.json_mode:
            return
        if self.terminal:
            self._rich_table(columns, [[cell(v) for v in row] for row in rows], title=title,
                             whole=whole, first_line=first_line, optional=optional)
            return
        if title:
            self.stream.write(f"# {title}\n")
        self.stream.write("\t".join(columns) + "\n")
        for row in rows:
            self.stream.write("\t".join(cell(v) for v in row) + "\n")

    def _rich_table(self, columns: Sequence[str], rows: list[list[str]], *, title: str | None,
                    whole: Sequence[str], first_line: Sequence[str],
                    optional: Sequence[str]) -> None:
        from rich import box
        from rich.cells import cell_len
        from rich.table import Table

        for row in rows:
            for index, column in enumerate(columns):
                if column in first_line:
                    row[index] = (row[index].strip().splitlines() or [""])[0]
        widest = {column: max([cell_len(column), *(cell_len(r[i]) for r in rows)])
                  for i, column in enumerate(columns)}
        width = self.console.width
        shown = [c for c in columns if c not in optional]
        if optional:  # a lighter box: 3 characters between columns, none at the edges
            used = sum(widest[c] for c in shown) + 3 * (len(shown) - 1)
            for column in optional:
                if used + 3 + widest[column] <= width:
                    shown.append(column)
                    used += 3 + widest[column]
        hidden = [c for c in columns if c not in shown]
        shown = [c for c in columns if c in shown]
        # What the first-line columns may take: the rest of the width when the others
        # show whole; when that is too little, let the others wrap down to their longest
        # word. At least 10 characters.
        budget = width - (3 * len(shown) + 1)
        spare = budget - sum(widest[c] for c in shown if c not in first_line)
        if spare < 20:
            spare = max(spare, min(20, budget - sum(
                widest[c] if c in whole else
                max((cell_len(w) for r in rows for w in r[columns.index(c)].split()),
                    default=1)
                for c in shown if c not in first_line)))
        spare = max(10, spare // max(1, sum(c in first_line for c in shown)))
        table = (Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
                 if optional else Table(title=title))
        for column in shown:
            if column in whole:
                table.add_column(column, no_wrap=True, min_width=widest[column])
            elif column in first_line:
                table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=spare)
            else:
                table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(v for v, c in zip(row, columns, strict=True) if c in shown))
        self.console.print(table)
        if hidden:
            from rich.text import Text

            self.console.print(Text(f"(not shown at {width} columns: {', '.join(hidden)}; "
                                    "--json has every field)", style="dim"))

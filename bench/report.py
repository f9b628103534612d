"""Rows of the result table, printed for a terminal and written as Markdown into
bench/README.md between two markers (the text around them is kept)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.measure import Summary

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"


@dataclass
class Row:
    scenario: str
    what: str
    value: Summary | None
    unit: str
    goal: str = ""
    met: bool | None = None  # None: a figure with no goal of its own
    note: str = ""

    def figure(self) -> str:
        if self.value is None:
            return "-"
        return number(self.value.median, self.unit)

    def spread(self) -> str:
        if self.value is None or len(self.value.samples) < 2:
            return ""
        quartiles = self.value.quartiles()
        if quartiles is not None:
            return f"IQR {number(quartiles[0], self.unit)}-{number(quartiles[1], self.unit)}"
        return f"{number(self.value.low, self.unit)}-{number(self.value.high, self.unit)}"

    def runs(self) -> str:
        return "" if self.value is None else str(len(self.value.samples))

    def verdict(self) -> str:
        return {None: "", True: "yes", False: "NO"}[self.met]


def number(value: float, unit: str) -> str:
    if unit == "×":
        return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"
    if unit == "s":
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    if unit == "MiB":
        return f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


HEADER = ("scenario", "measure", "median", "spread", "n", "unit", "goal", "met", "note")


def cells(row: Row) -> tuple[str, ...]:
    return (row.scenario, row.what, row.figure(), row.spread(), row.runs(), row.unit,
            row.goal, row.verdict(), row.note)


def text_table(rows: list[Row]) -> str:
    table = [HEADER, *(cells(r) for r in rows)]
    widths = [min(46, max(len(line[i]) for line in table)) for i in range(len(HEADER) - 1)]
    out = []
    for line in table:
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False))
                   + "  " + line[-1])
    return "\n".join(out)


def markdown_table(rows: list[Row]) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(esc(c) for c in cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def write_readme(path: Path, block: str) -> None:
    """Replace what lies between the markers; append the block when they are missing."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    generated = f"{START}\n{block.strip()}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: generated, text,
                      count=1, flags=re.S)
    else:
        text = (text.rstrip() + "\n\n" if text else "") + generated + "\n"
    path.write_text(text, encoding="utf-8")

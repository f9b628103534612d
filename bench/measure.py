"""Measuring primitives: timed child processes (wall time and peak RSS from the kernel),
summaries of repeated runs, and the exactly-once check every delivering scenario runs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BenchFailure(Exception):
    """A run that must not count: a command failed, or a delivery was lost or repeated.
    The suite prints it as one line and exits non-zero."""


@dataclass(frozen=True)
class Proc:
    """One finished child process."""

    argv: tuple[str, ...]
    wall: float  # seconds, from spawn to reaped
    peak_rss_mib: float  # the child's maximum resident set, from wait4's rusage
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.stdout)
        except json.JSONDecodeError as error:
            raise BenchFailure(f"{self.command}: stdout is not one JSON document "
                               f"({error}): {self.stdout[:200]!r}") from None
        if not isinstance(doc, dict):
            raise BenchFailure(f"{self.command}: expected a JSON object")
        return doc

    @property
    def command(self) -> str:
        return " ".join(Path(a).name if i == 0 else a for i, a in enumerate(self.argv[:4]))


def run(argv: Sequence[str], env: Mapping[str, str], *, timeout: float = 600,
        check: bool = True, stdin: str | None = None) -> Proc:
    """Run a child to completion, timing it from spawn to reaping and reading its peak RSS
    from the kernel (wait4), so nothing polls the child while it runs."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(list(argv), env=dict(env), stdout=out, stderr=err,
                                 stdin=subprocess.PIPE if stdin is not None else
                                 subprocess.DEVNULL)
        if stdin is not None:
            assert child.stdin is not None
            child.stdin.write(stdin.encode())
            child.stdin.close()
        killer = threading.Timer(timeout, child.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        proc = Proc(tuple(argv), wall, usage.ru_maxrss / 1024, child.returncode,
                    out.read().decode(errors="replace"), err.read().decode(errors="replace"))
    if check and proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
        raise BenchFailure(f"{proc.command} exited {proc.returncode} after "
                           f"{proc.wall:.1f} s: {' | '.join(tail)}")
    return proc


@dataclass(frozen=True)
class Summary:
    """Median of repeated runs with their spread (min-max; IQR from 5 samples on)."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    def quartiles(self) -> tuple[float, float] | None:
        if len(self.samples) < 5:
            return None
        q = statistics.quantiles(self.samples, n=4)
        return q[0], q[2]

    def percentile(self, p: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def summarize(samples: Iterable[float]) -> Summary:
    values = tuple(samples)
    if not values:
        raise ValueError("no samples")
    return Summary(values)


@dataclass
class Deliveries:
    """What a receiver saw against what should have arrived."""

    expected: int
    received: int
    missing: int
    duplicated: int  # ids that arrived more than once
    unexpected: int  # ids nobody scheduled
    examples: list[str] = field(default_factory=list)

    @property
    def exactly_once(self) -> bool:
        return self.missing == self.duplicated == self.unexpected == 0

    def describe(self) -> str:
        return (f"{self.received} received for {self.expected} expected: "
                f"{self.missing} missing, {self.duplicated} duplicated, "
                f"{self.unexpected} unexpected (e.g. {', '.join(self.examples[:3]) or '-'})")


def compare(expected: Iterable[str], seen: Counter[str]) -> Deliveries:
    want = set(expected)
    missing = [i for i in want if i not in seen]
    duplicated = [i for i, n in seen.items() if n > 1]
    unexpected = [i for i in seen if i not in want]
    return Deliveries(len(want), sum(seen.values()), len(missing), len(duplicated),
                      len(unexpected), sorted(duplicated + unexpected + missing)[:5])


def file_ids(path: Path) -> Counter[str]:
    """Ids of a JSON Lines delivery file; a line that is not a whole JSON document with
    an id is itself a failure (file: promises whole lines)."""
    seen: Counter[str] = Counter()
    if not path.exists():
        return seen
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            try:
                seen[str(json.loads(line)["id"])] += 1
            except (ValueError, KeyError, TypeError):
                raise BenchFailure(f"{path.name}:{number}: not a whole JSON delivery line: "
                                   f"{line[:80]!r}") from None
    return seen


def require_exactly_once(what: str, expected: Iterable[str], seen: Counter[str]
                         ) -> Deliveries:
    found = compare(expected, seen)
    if not found.exactly_once:
        raise BenchFailure(f"EXACTLY-ONCE VIOLATED in {what}: {found.describe()}")
    return found

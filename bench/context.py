"""What every scenario is handed: the server, the followup under test, the sizes, the
number of runs, a scratch directory, and a migrated template database to clone."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.install import Installed
from bench.measure import Proc, run
from bench.pgdb import Server
from bench.report import Row

WORKERS = Path(__file__).resolve().parent / "workers"


@dataclass(frozen=True)
class Sizes:
    """Issue 13's and issue 9's sizes; TINY keeps every code path, for CI."""

    run_due: int = 20_000
    run_due_large: int = 100_000
    webhook: int = 2_000
    concurrency: tuple[int, ...] = (16, 64)
    webhook_delay: float = 0.05
    import_rows: int = 100_000
    import_large: int = 1_000_000
    booking_import: int = 500_000
    booking_calls: int = 50
    booking_interval: float = 0.5
    scan_users: int = 1_000_000
    scan_messages_per_user: int = 10
    startup_samples: int = 15
    peers: int = 10_000
    api_calls: int = 1_000
    runs: int = 3


TINY = Sizes(run_due=500, run_due_large=1_500, webhook=200, import_rows=2_000,
             import_large=20_000, booking_import=20_000, booking_calls=4,
             booking_interval=0.2, scan_users=2_000, startup_samples=3, peers=300,
             api_calls=20, runs=2)


@dataclass
class Context:
    server: Server
    followup: Installed
    sizes: Sizes
    runs: int
    heavy_runs: int
    tmp: Path
    template: str  # a migrated, empty followup database
    tiny: bool
    rows: list[Row] = field(default_factory=list)

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def env(self, db: str | None = None, **extra: str) -> dict[str, str]:
        """The environment of a followup process: the caller's, less every followup
        setting, plus the database and what the scenario sets."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("FOLLOWUP_", "SCHEDULER_", "REENGAGEMENT_"))
               and k not in ("DATABASE_URL", "MEMORY_BACKEND")}
        if db is not None:
            env["DATABASE_URL"] = self.server.url(db)
        env.update(extra)
        return env

    def followup_run(self, db: str | None, *args: str, timeout: float = 900,
                     check: bool = True, **env: str) -> Proc:
        return run([self.followup.followup, *args], self.env(db, **env), timeout=timeout,
                   check=check)

    def worker(self, script: str, *args: str, python: str | None = None,
               timeout: float = 900) -> Proc:
        """A stand-alone program of bench/workers, run by its path (so that with the
        installed interpreter, followup_cli comes from the installed package)."""
        return run([python or sys.executable, str(WORKERS / script), *args], self.env(),
                   timeout=timeout)

    def add(self, row: Row) -> None:
        if self.tiny:
            row.met = None  # tiny sizes say nothing about speed
        self.rows.append(row)
        unit = "" if row.unit == "×" else f" {row.unit}"
        self.log(f"  {row.what}: {row.figure()}{unit} {row.spread()} "
                 f"{('[' + row.verdict() + ']') if row.met is not None else ''}")

    def judge(self, ok: bool) -> bool | None:
        return None if self.tiny else ok

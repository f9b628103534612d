"""The benchmark suite of issue 13: every scenario side by side in one run.

    python -m bench                    # everything, issue sizes; writes bench/README.md
    python -m bench --tiny             # every code path at CI sizes (no timing judged)
    python -m bench --only run-due --only peers --runs 5

Each scenario runs in fresh PostgreSQL databases (FOLLOWUP_BENCH_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/postgres) against a followup wheel built from this
checkout and installed into a scratch virtualenv (or --followup PATH). Every delivering
run checks that each id arrived exactly once; a violation, or any failed command, is one
line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench import install, machine
from bench.context import TINY, Context, Sizes
from bench.measure import BenchFailure
from bench.pgdb import Server
from bench.report import Row, markdown_table, text_table, write_readme

README = Path(__file__).resolve().parent / "README.md"

# name → (module under bench.scenarios, what it measures)
SCENARIOS: dict[str, tuple[str, str]] = {
    "run-due": ("run_due", "run-due processes vs a raw SKIP LOCKED loop, with/without stats"),
    "webhook": ("webhook", "run-due against a 50 ms webhook receiver, --concurrency 16/64"),
    "import": ("importing", "schedule import rows/s and peak RSS vs raw COPY"),
    "booking": ("booking", "issue 9: schedule post-event during a big import"),
    "scan": ("scan", "scan-inactive over 1M users / 10M messages, 3 % and 10 % inactive"),
    "startup": ("startup", "cold start of the commands cron and bookings run"),
    "peers": ("peers", "10,000 jobs: followup vs APScheduler 3 and procrastinate"),
    "api": ("api", "issue 9: FollowUps API calls vs schedule post-event processes"),
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                     epilog="Scenarios: " + "; ".join(
                                         f"{k}: {v[1]}" for k, v in SCENARIOS.items()))
    parser.add_argument("--tiny", action="store_true",
                        help="CI sizes: every scenario and check, about a minute, no goal "
                             "judged")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS),
                        metavar="SCENARIO", help="run only this scenario (repeatable): "
                        + ", ".join(SCENARIOS))
    parser.add_argument("--runs", type=int, help="runs of each repeated measurement "
                        "(default 3; 2 with --tiny)")
    parser.add_argument("--heavy-runs", type=int, default=1,
                        help="runs of the million-row import and the import under "
                             "bookings (default 1)")
    parser.add_argument("--followup", metavar="PATH",
                        help="measure this installed `followup` instead of building a wheel")
    parser.add_argument("--readme", type=Path, metavar="PATH",
                        help="write the table here (default: bench/README.md, only for a "
                             "full run of every scenario)")
    args = parser.parse_args(argv)
    if (args.runs is not None and args.runs < 1) or args.heavy_runs < 1:
        parser.error("--runs and --heavy-runs must be at least 1")
    return args


def scenario(name: str) -> Callable[[Context], None]:
    module = importlib.import_module(f"bench.scenarios.{SCENARIOS[name][0]}")
    runner: Callable[[Context], None] = module.run
    return runner


def run_all(ctx: Context, names: list[str],
            runners: Callable[[str], Callable[[Context], None]] = scenario) -> list[str]:
    """Every scenario in turn; a failed one is a FAILED row and one line on stderr, and
    the others still run. Returns the failures."""
    failures = []
    for name in names:
        ctx.log(f"== {name}: {SCENARIOS[name][1]}")
        try:
            runners(name)(ctx)
        except BenchFailure as failure:
            failures.append(f"{name}: {failure}")
            print(f"BENCH FAILURE {name}: {failure}", file=sys.stderr, flush=True)
            ctx.rows.append(Row(name, "FAILED", None, "", note=str(failure)[:300]))
    return failures


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sizes: Sizes = TINY if args.tiny else Sizes()
    runs = args.runs or sizes.runs
    names = args.only or list(SCENARIOS)
    server = Server()
    failures: list[str] = []
    rows: list[Row] = []
    facts: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="followup-bench-") as scratch:
        tmp = Path(scratch)
        try:
            followup = (install.installed(args.followup) if args.followup
                        else install.build(tmp / "install"))
            facts = machine.describe(server, followup)
            ctx = Context(server, followup, replace(sizes, runs=runs), runs,
                          args.heavy_runs, tmp, server.create("template"), args.tiny, rows)
            ctx.followup_run(ctx.template, "db", "upgrade")
            ctx.log(f"measuring {followup.version} ({followup.origin}); scenarios: "
                    f"{', '.join(names)}")
            failures = run_all(ctx, names)
        except BenchFailure as failure:
            print(f"BENCH FAILURE: {failure}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted: scratch databases dropped", file=sys.stderr)
            return 130
        finally:
            server.cleanup()
    minutes = (time.monotonic() - started) / 60
    print(text_table(rows))
    print(f"\n{len(rows)} figures in {minutes:.1f} min; "
          + (f"{len(failures)} FAILED: " + "; ".join(failures) if failures
             else "every delivery checked exactly once"))
    target = args.readme or (README if not args.tiny and not args.only else None)
    if target is not None:
        load = os.getloadavg()
        block = "\n".join([*facts, f"- Suite: `python -m bench{' --tiny' if args.tiny else ''}"
                           f"` ({runs} runs, {minutes:.0f} min); load average at the end "
                           f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}", "",
                           markdown_table(rows)])
        write_readme(target, block)
        print(f"table written to {target}")
    return 1 if failures else 0

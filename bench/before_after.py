"""Two installed copies of followup, interleaved in one run: the admission path's workloads.

    python -m bench.before_after OLD_FOLLOWUP NEW_FOLLOWUP [--runs 4] [--rows 100000]
                                 [--users 300000] [--each-schema]
    python -m bench.before_after OLD_FOLLOWUP NEW_FOLLOWUP --cold 15

OLD_FOLLOWUP and NEW_FOLLOWUP are `followup` executables of two installs (for example
`/tmp/old/bin/followup`, from `pip install` of an older checkout into its own venv). Each
runs `schedule import` of --rows JSON Lines rows and `scan-inactive` over --users users
(10 messages each; 3 % and 10 % inactive), on a fresh clone of the same database every
run, alternating which copy goes first; it prints medians, min-max, and old/new ratios
taken run by run. Every run's result is checked: all rows scheduled, one re-engagement
per inactive user. Databases are `followup_bench_*`, dropped at the end. NEW migrates
them, so both copies must work on NEW's schema; with --each-schema each copy runs on
databases its own `db upgrade` made (the messages are seeded once under OLD's schema, then
a clone is upgraded by NEW), so what a new migration changes, an index say, is measured too.

With --cold N, only cold starts instead: N fresh processes each of `schedule post-event`,
`health`, a `run-due` with one due row (it must be delivered), an idle `run-due` and the
interpreter alone (`python -c pass`, each copy's own),
interleaved (old, new, old, ...), on one migrated database per copy (its own with
--each-schema); every booking must schedule.

The copies are started from `/`: `python -m followup_cli` started in a checkout imports
the checkout's package, whatever is installed, and a before/after run would then measure the
same code twice.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.explain import env_for, migrated
from bench.pgdb import ADMIN_URL, Server, insert_due, query
from bench.scenarios.scan import inactive, load

EVENT = "2026-11-14T18:00:00+00:00"
FUTURE_EVENT = "2036-11-14T18:00:00+00:00"  # cold bookings must not make the idle pass busy


def write_rows(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            out.write(json.dumps({"type": "post_event", "user_id": f"iu{i}",
                                  "conversation_id": f"ic{i}", "event_date": EVENT,
                                  "booking_id": f"B-{i}"}) + "\n")


def timed(server: Server, template: str, followup: str, args: list[str],
          check: Callable[[str], None], **extra: str) -> float:
    with server.scratch("ba", template=template, file_copy=True) as db:
        start = time.perf_counter()
        subprocess.run([followup, *args], env=env_for(server, db, **extra), check=True,
                       stdout=subprocess.DEVNULL, cwd="/")
        seconds = time.perf_counter() - start
        check(db)
        return seconds


def summarize(label: str, old: list[float], new: list[float], note: str, *,
              digits: int = 2) -> None:
    """Medians and min-max of both copies, and old/new taken run by run."""
    ratios = [o / n for o, n in zip(old, new, strict=True)]

    def spread(xs: list[float]) -> str:
        return f"{statistics.median(xs):.{digits}f} s ({min(xs):.{digits}f}-{max(xs):.{digits}f})"

    print(f"{label}: old {spread(old)}, new {spread(new)}, old/new "
          f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}-{max(ratios):.2f}), {note}")


def cold(server: Server, copies: dict[str, str], samples: int, each_schema: bool) -> None:
    """Cold starts of both copies, interleaved: medians, min-max, old/new ratios."""
    dbs = {"new": migrated(server, "ba_cold", copies["new"])}
    dbs["old"] = (migrated(server, "ba_cold_old", copies["old"]) if each_schema
                  else dbs["new"])
    python = {which: str(Path(path).with_name("python")) for which, path in copies.items()}

    def case(which: str, name: str, i: int) -> list[str]:
        return {
            "schedule post-event": [copies[which], "schedule", "post-event", "--user-id",
                                    f"{which}-{i}", "--conversation-id", "c",
                                    "--event-date", FUTURE_EVENT, "--json"],
            "health": [copies[which], "health", "--json"],
            "run-due, 1 due row": [copies[which], "run-due", "--json"],
            "run-due, idle": [copies[which], "run-due", "--json"],
            "python -c pass": [python[which], "-c", "pass"],
        }[name]

    names = ["schedule post-event", "health", "run-due, 1 due row", "run-due, idle",
             "python -c pass"]
    seconds: dict[tuple[str, str], list[float]] = {}
    for i in range(samples):
        for name in names:
            for which in (("old", "new") if i % 2 == 0 else ("new", "old")):
                env = env_for(server, dbs[which], FOLLOWUP_SENDER="log")
                due: list[str] = []
                if name == "run-due, 1 due row":
                    due = insert_due(server, dbs[which], 1, prefix=f"cold-{which}-{i}")
                start = time.perf_counter()
                done = subprocess.run(case(which, name, i), env=env, cwd="/",
                                      capture_output=True, text=True)
                seconds.setdefault((name, which), []).append(time.perf_counter() - start)
                # health answers 1 (unhealthy) until a pass has run; the rest must succeed
                if done.returncode not in ((0, 1) if name == "health" else (0,)):
                    raise SystemExit(f"{which} {name}: exit {done.returncode}: {done.stderr}")
                if name == "schedule post-event" and '"scheduled"' not in done.stdout:
                    raise SystemExit(f"{which} {name} did not schedule: {done.stdout}")
                if due and query(server, dbs[which], "SELECT status FROM scheduled_followups"
                                 " WHERE id = %s", (due[0],)) != [("executed",)]:
                    raise SystemExit(f"{which} {name} did not deliver {due[0]}")
    for name in names:
        summarize(f"cold {name}", seconds[(name, "old")], seconds[(name, "new")],
                  f"{samples} processes each", digits=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=300_000)
    parser.add_argument("--each-schema", action="store_true",
                        help="each copy on databases its own `db upgrade` migrated")
    parser.add_argument("--cold", type=int, metavar="N",
                        help="compare cold starts only, N processes of each command")
    args = parser.parse_args()
    server = Server(os.environ.get("FOLLOWUP_BENCH_POSTGRES_URL", ADMIN_URL))
    copies = {"old": args.old, "new": args.new}
    if args.cold:
        try:
            cold(server, copies, args.cold, args.each_schema)
        finally:
            server.cleanup()
        return
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows = Path(tmp) / "rows.jsonl"
            write_rows(rows, args.rows)
            empty = {"new": migrated(server, "ba_empty", args.new)}
            people = {"new": migrated(server, "ba_scan",
                                      args.old if args.each_schema else args.new)}
            load(server, people["new"], args.users, per_user=10)
            if args.each_schema:
                empty["old"] = migrated(server, "ba_empty_old", args.old)
                people["old"] = people["new"]
                people["new"] = server.create("ba_scan_new", template=people["old"],
                                              file_copy=True)
                subprocess.run([args.new, "db", "upgrade"], check=True, capture_output=True,
                               env=env_for(server, people["new"]), cwd="/")
            else:
                empty["old"], people["old"] = empty["new"], people["new"]

            def imported(db: str) -> None:
                [(n,)] = query(server, db, "SELECT count(*) FROM scheduled_followups "
                               "WHERE status = 'pending'")
                if n != args.rows:
                    raise SystemExit(f"import scheduled {n} of {args.rows} rows")

            def scanned(days: int) -> Callable[[str], None]:
                def check(db: str) -> None:
                    [(n, users)] = query(server, db, "SELECT count(*), count(DISTINCT "
                                         "user_id) FROM scheduled_followups")
                    if not n == users == inactive(args.users, days):
                        raise SystemExit(f"scan ({days} days) scheduled {n} for {users} "
                                         f"users, expected {inactive(args.users, days)}")
                return check

            cases: dict[str, tuple[dict[str, str], list[str], Callable[[str], None],
                                   dict[str, str]]] = {
                f"schedule import, {args.rows:,} rows":
                    (empty, ["schedule", "import", str(rows), "--json"], imported, {}),
                f"scan-inactive, {args.users:,} users, 10 %":
                    (people, ["scan-inactive", "--json"], scanned(20),
                     {"REENGAGEMENT_INACTIVE_DAYS": "20"}),
                f"scan-inactive, {args.users:,} users, 3 %":
                    (people, ["scan-inactive", "--json"], scanned(30),
                     {"REENGAGEMENT_INACTIVE_DAYS": "30"}),
            }
            seconds: dict[tuple[str, str], list[float]] = {}
            for i in range(args.runs):
                for case, (templates, argv, check, extra) in cases.items():
                    for which in (("old", "new") if i % 2 == 0 else ("new", "old")):
                        s = timed(server, templates[which], copies[which], argv, check,
                                  **extra)
                        seconds.setdefault((case, which), []).append(s)
                        print(f"  {case}, {which}, run {i + 1}: {s:.2f} s", file=sys.stderr)
            for case in cases:
                summarize(case, seconds[(case, "old")], seconds[(case, "new")],
                          f"{args.runs} runs each")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()

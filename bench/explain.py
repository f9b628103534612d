"""Plans and profiles behind the goals the suite reports missed: what limits each one.

    python -m bench.explain claim      # EXPLAIN ANALYZE of run-due's claim, 100,000 due, ±stats
    python -m bench.explain scan       # the scan-inactive candidate query's plan; cProfile
    python -m bench.explain import     # cProfile of a 100,000-row import; the longest
                                       # statements of a 1,000,000-row one
    python -m bench.explain webhook    # py-spy (GIL samples) of run-due --concurrency 64,
                                       # its CPU, and httpcore's CPU a request against
                                       # http.client's
    python -m bench.explain startup    # -X importtime of the cold commands
    python -m bench.explain api        # statements and cProfile of one API booking
    python -m bench.explain summary    # what a per-user last-activity table would cost the
                                       # chat application's inserts and give the scan (its
                                       # candidate query, and the whole pass)

Runs the checkout's followup (this interpreter's environment, with the bench extra), in
scratch databases that are dropped at the end. Figures under a profiler are slower than the
suite's; read them for where the time goes, not for how much there is.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.context import Context, Sizes
from bench.install import build, installed
from bench.pgdb import Server, insert_due, query
from bench.scenarios import scan as scan_scenario
from bench.scenarios.importing import rows_file
from bench.scenarios.webhook import Receiver

BIN = Path(sys.executable).parent
FOLLOWUP = str(BIN / "followup")


def env_for(server: Server, db: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FOLLOWUP_", "SCHEDULER_", "REENGAGEMENT_"))}
    return {**env, "DATABASE_URL": server.url(db), **extra}


def migrated(server: Server, label: str, followup: str = FOLLOWUP) -> str:
    """A new database, migrated by `followup` (this environment's, unless given)."""
    db = server.create(label)
    subprocess.run([followup, "db", "upgrade"], env=env_for(server, db), check=True,
                   capture_output=True, cwd="/")
    return db


def top(profile: str | cProfile.Profile, key: str, n: int) -> str:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats(key).print_stats(n)
    return out.getvalue()


def cprofile(server: Server, db: str, *args: str, **extra: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".prof") as prof:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cProfile", "-o", prof.name, FOLLOWUP, *args],
                       env=env_for(server, db, **extra), check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        return (f"followup {' '.join(args)} under cProfile: {wall:.1f} s\n"
                + top(prof.name, "cumulative", 40) + top(prof.name, "tottime", 15))


def compiled(statement: Any) -> str:
    """A statement a store function builds, as PostgreSQL SQL with its values inlined."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def claim_sql() -> tuple[list[str], str]:
    """run-due's claim of 1,000 rows as the pass sends it: its plan settings (SET LOCAL,
    run first in the same transaction) and the statement with its parameters filled in."""
    from followup_cli.store.sql_text import POSTGRESQL

    now = datetime.now(UTC)
    settings = [s.strip() for s in POSTGRESQL["delivery.claim_plan"][0].split(";")
                if s.strip()]
    claim, constants = POSTGRESQL["delivery.claim"]
    statement = claim % {
        **{name: f"'{value}'" for name, value in constants.items()},
        "due": f"'{now.isoformat()}'::timestamptz", "n": 1000, "run": "'explain'",
        "until": f"'{(now + timedelta(seconds=600)).isoformat()}'::timestamptz"}
    return settings, statement


def scan_sql(days: int) -> str:
    """scan-inactive's candidate query for users inactive `days` days."""
    from followup_cli.store import scanning

    return compiled(scanning.candidates_query(datetime.now(UTC) - timedelta(days=days)))


def explain(server: Server, db: str, sql: str, *settings: str, keep: bool = False) -> str:
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            for setting in settings:
                cur.execute(setting)
            start = time.perf_counter()
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = "\n".join(r[0] for r in cur.fetchall())
            seconds = time.perf_counter() - start
        conn.commit() if keep else conn.rollback()
    finally:
        conn.close()
    return f"-- {', '.join(settings) or 'server defaults'}: {seconds:.2f} s\n{plan}\n"


def claim(server: Server) -> None:
    """The claim of 1,000 among 100,000 due rows, three claims in a row, without and with
    table statistics."""
    settings, sql = claim_sql()
    for analyze in (False, True):
        db = migrated(server, "claim")
        insert_due(server, db, 100_000, prefix="c", analyze=analyze)
        for i in range(3):
            plan = explain(server, db, sql, *settings, keep=True)
            if i != 1:
                print(f"==== statistics: {analyze}, claim {i + 1}\n{plan}")
        server.drop(db)


def scan(server: Server) -> None:
    ctx = Context(server, installed(FOLLOWUP), Sizes(), 1, 1, Path(tempfile.gettempdir()),
                  template="", tiny=False)
    template, seconds, size = scan_scenario.seed(ctx)
    print(f"seeded {ctx.sizes.scan_users:,} users in {seconds:.0f} s, {size / 2**30:.2f} GiB")
    db = server.create("scan", template=template, file_copy=True)
    for days in (30, 20):
        # the pass runs it with JIT off (store/scanning.py inactive_candidates)
        for settings in (("SET jit = off",), ()):
            print(f"==== candidates, {days} days\n"
                  + explain(server, db, scan_sql(days), *settings))
    print(cprofile(server, db, "scan-inactive", "--json"))


def import_(server: Server) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _import(server, Context(server, installed(FOLLOWUP), Sizes(), 1, 1, Path(tmp),
                                template="", tiny=False))


def _import(server: Server, ctx: Context) -> None:
    db = migrated(server, "import")
    print(cprofile(server, db, "schedule", "import", str(rows_file(ctx, 100_000)), "--json"))
    server.drop(db)
    db = migrated(server, "import")
    longest: dict[str, float] = {}
    child = subprocess.Popen([FOLLOWUP, "schedule", "import",
                              str(rows_file(ctx, 1_000_000)), "--json"],
                             env=env_for(server, db), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    start = time.perf_counter()
    while child.poll() is None:
        for sql, age in query(server, "postgres", "SELECT query, extract(epoch FROM now() - "
                              "query_start) FROM pg_stat_activity WHERE datname = %s AND "
                              "state = 'active' AND application_name = 'followup'", (db,)):
            key = " ".join(str(sql).split())[:240]
            longest[key] = max(longest.get(key, 0.0), float(age))
        time.sleep(0.5)
    error = child.stderr.read().strip() if child.stderr else ""
    print(f"==== schedule import of 1,000,000 rows: exit {child.returncode} after "
          f"{time.perf_counter() - start:.0f} s {error}")
    for sql, age in sorted(longest.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  longest seen active {age:5.1f} s: {sql}")


def webhook(server: Server) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _webhook(server, Context(server, installed(FOLLOWUP), Sizes(), 1, 1, Path(tmp),
                                 template="", tiny=False))


def _webhook(server: Server, ctx: Context) -> None:
    spy = BIN / "py-spy"
    if not spy.exists():
        raise SystemExit("py-spy is not installed (pip install -e '.[bench]')")
    db = migrated(server, "webhook")
    insert_due(server, db, 4000, prefix="w", analyze=True)
    receiver = Receiver(ctx, 0.05, ctx.tmp / "counts.json")
    raw = ctx.tmp / "samples.txt"
    try:
        done = subprocess.run(
            [str(spy), "record", "--gil", "--nonblocking", "-r", "100", "-f", "raw", "-o",
             str(raw), "--", sys.executable, FOLLOWUP, "run-due", "--json",
             "--concurrency", "64"],
            env=env_for(server, db, FOLLOWUP_SENDER=f"webhook:http://127.0.0.1:"
                        f"{receiver.port}/hook"), capture_output=True, text=True)
    finally:
        receiver.stop()
    seconds = re.search(r'"seconds": ([\d.]+)', done.stdout)
    print(f"==== run-due --concurrency 64, 4,000 sends: {seconds[1] if seconds else '?'} s "
          "in the pass; samples taken while a thread held the GIL:")
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    count = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        count += int(samples)
        own[frames[-1]] += int(samples)
        for frame in set(frames):
            total[frame] += int(samples)
    for title, counter in (("own", own), ("cumulative", total)):
        print(f"-- {title}")
        for frame, n in counter.most_common(25):
            print(f"{n / count:6.1%}  {frame}")
    _webhook_cpu(server, ctx)
    _client_cpu(ctx)


def _webhook_cpu(server: Server, ctx: Context) -> None:
    """Wall and CPU time of a pass of 2,000 sends at --concurrency 64, unprofiled."""
    db = migrated(server, "webhook_cpu")
    insert_due(server, db, 2000, prefix="c", analyze=True)
    receiver = Receiver(ctx, 0.05, ctx.tmp / "cpu_counts.json")
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)  # the receiver is not reaped yet
        start = time.perf_counter()
        subprocess.run([FOLLOWUP, "run-due", "--json", "--concurrency", "64"], check=True,
                       env=env_for(server, db, FOLLOWUP_SENDER=f"webhook:http://127.0.0.1:"
                                   f"{receiver.port}/hook"), capture_output=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        receiver.stop()
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    print(f"==== run-due --concurrency 64, 2,000 sends, unprofiled: {wall:.2f} s wall, "
          f"{user + system:.2f} s CPU ({user:.2f} user, {system:.2f} system: "
          f"{(user + system) / wall:.0%} of one core), {(user + system) / 2000 * 1e3:.2f} ms "
          "of CPU a send")


def _client_cpu(ctx: Context, n: int = 2000) -> None:
    """CPU a request of httpcore (what WebhookSender sends with) and of the standard
    library's http.client, one thread, keep-alive, a receiver that answers at once."""
    import http.client

    import httpcore

    receiver = Receiver(ctx, 0.0, ctx.tmp / "client_counts.json")
    body = b'{"id": "x", "message": "' + b"hello " * 20 + b'"}'
    headers = {"content-type": "application/json", "webhook-id": "x"}

    def with_httpcore() -> None:
        with httpcore.ConnectionPool(max_connections=1, max_keepalive_connections=1) as pool:
            for _ in range(n):
                with pool.stream("POST", f"http://127.0.0.1:{receiver.port}/hook",
                                 headers=list(headers.items()), content=body) as answer:
                    for _chunk in answer.iter_stream():
                        pass

    def with_http_client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
        for _ in range(n):
            conn.request("POST", "/hook", body=body, headers=headers)
            conn.getresponse().read(65536)
        conn.close()

    try:
        print(f"==== CPU a request, {n:,} requests, one thread, keep-alive:")
        for name, send in (("httpcore", with_httpcore), ("http.client", with_http_client)) * 2:
            before = time.process_time()
            send()
            print(f"  {name}: {(time.process_time() - before) / n * 1e6:.0f} µs")
    finally:
        receiver.stop()


def startup(server: Server) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        followup = build(Path(tmp)).followup
        python = str(Path(followup).parent / "python")
        db = migrated(server, "startup")
        env = env_for(server, db, FOLLOWUP_SENDER=f"file:{tmp}/out.jsonl")
        cases = {"schedule post-event": ["schedule", "post-event", "--user-id", "u",
                                         "--conversation-id", "c", "--event-date",
                                         "2030-06-01T18:00"],
                 "health": ["health"], "run-due, 1 due": ["run-due"], "--help": ["--help"]}
        for label, args in cases.items():
            for i in range(3):  # warm caches the way the suite does
                if label == "run-due, 1 due":
                    insert_due(server, db, 1, prefix=f"warm{i}")
                subprocess.run([followup, *args[:3], f"{args[3]}{i}", *args[4:]]
                               if label == "schedule post-event" else [followup, *args],
                               env=env, capture_output=True)
            if label == "run-due, 1 due":
                insert_due(server, db, 1, prefix="profiled")
            start = time.perf_counter()
            done = subprocess.run([python, "-X", "importtime", followup, *args], env=env,
                                  capture_output=True, text=True)
            wall = time.perf_counter() - start
            rows = []  # (cumulative µs, depth, module)
            for line in done.stderr.splitlines():
                m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
                if m:
                    rows.append((int(m[1]), len(m[2]), m[3]))
            imports = sum(c for c, depth, _ in rows if depth == 1) / 1e6
            print(f"==== {label}: {wall:.3f} s with -X importtime, of which imports "
                  f"{imports:.3f} s")
            for cumulative, depth, name in sorted((r for r in rows if r[1] <= 3),
                                                  key=lambda r: -r[0])[:12]:
                print(f"  {cumulative / 1000:7.1f} ms {'  ' * (depth - 1)}{name}")


def api(server: Server) -> None:
    import sqlalchemy as sa

    from followup_cli.api import FollowUps

    db = migrated(server, "api")
    statements: Counter[str] = Counter()

    def seen(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        statements[" ".join(statement.split())[:120]] += 1

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    followups = FollowUps(server.url(db))
    for i in range(20):
        followups.schedule_post_event(f"warm{i}", f"c{i}", "2030-06-01T18:00")
    statements.clear()
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    for i in range(200):
        followups.schedule_post_event(f"u{i}", f"c{i}", "2030-06-01T18:00",
                                      booking_id=f"B{i}")
    profile.disable()
    per_call = (time.perf_counter() - start) / 200
    followups.close()
    print(f"==== FollowUps.schedule_post_event: {per_call * 1000:.1f} ms a call under "
          f"cProfile, {sum(statements.values()) / 200:.1f} statements a call:")
    for statement, n in statements.most_common():
        print(f"  {n / 200:4.1f}  {statement}")
    print(top(profile, "tottime", 15))


# An experiment for a decision that is not made (issue 13: the scan at 3 %): a per-user
# last-activity table kept by a trigger on the chat application's message inserts. Not a
# migration; it exists only in this topic's scratch database.
SUMMARY_DDL = """
CREATE TABLE user_last_activity (user_id varchar(255) PRIMARY KEY,
                                 last_activity timestamptz NOT NULL);
CREATE INDEX ix_user_last_activity ON user_last_activity (last_activity);
CREATE FUNCTION note_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_last_activity VALUES (NEW.user_id, NEW.created_at)
    ON CONFLICT (user_id) DO UPDATE SET last_activity = EXCLUDED.last_activity
    WHERE user_last_activity.last_activity < EXCLUDED.last_activity;
    RETURN NULL;
END $$;
CREATE TRIGGER ai_messages_note_activity AFTER INSERT ON ai_messages
    FOR EACH ROW WHEN (NEW.role = 'user') EXECUTE FUNCTION note_activity();
"""
SUMMARY_USERS = 1_000_000
SUMMARY_INSERTS = 2_000  # per block; blocks alternate with and without the trigger
SUMMARY_BLOCKS = 10


def summary(server: Server) -> None:
    """The cost: a chat application's single-message transactions (one INSERT, one COMMIT
    each) with the trigger on and off, in alternating blocks, against a table of a million
    users. The gain: the scan's candidates (3 % of a million users inactive 30 days) read
    from the summary's index."""
    db = migrated(server, "summary")
    try:
        conn = server.connect(db)
        with conn, conn.cursor() as cur:
            cur.execute(SUMMARY_DDL)
            cur.execute(
                "INSERT INTO user_last_activity SELECT 'u' || g, now() - CASE WHEN g %% 100 < 3"
                " THEN interval '40 days' ELSE interval '1 day' END"
                " FROM generate_series(1, %s) AS g", (SUMMARY_USERS,))
            cur.execute("INSERT INTO ai_conversations (id, user_id, created_at)"
                        " VALUES ('c', 'u1', now())")
            cur.execute("ANALYZE user_last_activity")
        conn.autocommit = False
        per_insert: dict[bool, list[float]] = {True: [], False: []}
        with conn.cursor() as cur:
            for block in range(SUMMARY_BLOCKS):
                on = block % 2 == 0
                cur.execute(f"ALTER TABLE ai_messages {'ENABLE' if on else 'DISABLE'}"
                            " TRIGGER ai_messages_note_activity")
                conn.commit()
                start = time.perf_counter()
                for i in range(SUMMARY_INSERTS):
                    user = f"u{(block * SUMMARY_INSERTS + i) * 7919 % SUMMARY_USERS}"
                    cur.execute(
                        "INSERT INTO ai_messages (id, conversation_id, user_id, role, content,"
                        " created_at) VALUES (%s, 'c', %s, 'user', 'hello', now())",
                        (f"m{block}-{i}", user))
                    conn.commit()
                per_insert[on].append((time.perf_counter() - start) / SUMMARY_INSERTS)
        conn.close()
        with_trigger, without = per_insert[True], per_insert[False]
        def spread(xs: list[float]) -> str:
            return (f"{statistics.median(xs) * 1e6:.0f} µs ({min(xs) * 1e6:.0f}-"
                    f"{max(xs) * 1e6:.0f})")

        print(f"==== a chat message's INSERT and COMMIT, {SUMMARY_INSERTS:,} per block,"
              f" {SUMMARY_BLOCKS // 2} blocks each: {spread(without)} without the trigger,"
              f" {spread(with_trigger)} with it; with / without block by block: "
              + ", ".join(f"{a / b:.2f}×" for a, b in zip(with_trigger, without, strict=True)))
        print("==== the candidates from the summary, 3 % of a million users inactive 30 days\n"
              + explain(server, db, "SELECT user_id, last_activity FROM user_last_activity"
                        " WHERE last_activity < now() - interval '30 days'"))
    finally:
        server.drop(db)
    _scan_with_summary(server)


SUMMARY_BACKFILL = """
CREATE TABLE user_last_activity (user_id varchar(255) PRIMARY KEY,
                                 last_activity timestamptz NOT NULL);
INSERT INTO user_last_activity
    SELECT user_id, max(created_at) FROM ai_messages WHERE role = 'user' GROUP BY user_id;
CREATE INDEX ix_user_last_activity ON user_last_activity (last_activity, user_id);
"""


def _scan_with_summary(server: Server, runs: int = 3) -> None:
    """The whole scan-inactive pass, as the release runs it and with its candidates read
    from the summary (workers/scan_from_summary.py), on clones of the suite's 1,000,000-
    user template (the summary backfilled in one of them), interleaved."""
    ctx = Context(server, installed(FOLLOWUP), Sizes(), 1, 1, Path(tempfile.gettempdir()),
                  template="", tiny=False)
    plain, _, _ = scan_scenario.seed(ctx)
    with_summary = server.create("summarytpl", template=plain, file_copy=True)
    conn = server.connect(with_summary, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(SUMMARY_BACKFILL)
        cur.execute("VACUUM ANALYZE user_last_activity")  # not inside the block above
    conn.close()
    worker = str(Path(__file__).parent / "workers" / "scan_from_summary.py")
    for days, share in ((30, "3 %"), (20, "10 %")):
        seconds: dict[str, list[float]] = {"release": [], "summary": []}
        for _ in range(runs):
            for label, template, argv in (
                    ("release", plain, [FOLLOWUP]),
                    ("summary", with_summary, [sys.executable, worker])):
                with server.scratch("summaryscan", template=template, file_copy=True) as db:
                    start = time.perf_counter()
                    done = subprocess.run(
                        [*argv, "scan-inactive", "--json"], capture_output=True, text=True,
                        check=True, cwd="/", env=env_for(
                            server, db, REENGAGEMENT_INACTIVE_DAYS=str(days)))
                    seconds[label].append(time.perf_counter() - start)
                    scheduled = re.search(r'"scheduled": (\d+)', done.stdout)
                    expected = scan_scenario.inactive(ctx.sizes.scan_users, days)
                    if scheduled is None or int(scheduled[1]) != expected:
                        raise SystemExit(f"{label}: scheduled {scheduled and scheduled[1]},"
                                         f" expected {expected}")
        release, from_summary = (statistics.median(seconds[k]) for k in seconds)
        print(f"==== scan-inactive, {share} inactive, whole process, {runs} runs each:"
              f" release {release:.2f} s ({min(seconds['release']):.2f}-"
              f"{max(seconds['release']):.2f}), candidates from the summary"
              f" {from_summary:.2f} s ({min(seconds['summary']):.2f}-"
              f"{max(seconds['summary']):.2f}): {release / from_summary:.2f}×")


TOPICS: dict[str, Callable[[Server], None]] = {
    "claim": claim, "scan": scan, "import": import_, "webhook": webhook,
    "startup": startup, "api": api, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.explain",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("topic", choices=sorted(TOPICS))
    topic = parser.parse_args().topic
    server = Server()
    try:
        TOPICS[topic](server)
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()

"""`followup scan-inactive` over a large conversation memory: 1,000,000 users with 10
messages each (10,000,000 messages), 3 % of them inactive for 45 days and 7 % more for
25 days. With REENGAGEMENT_INACTIVE_DAYS=30 the pass finds 3 %; with 20, 10 %.

The memory is seeded once with SQL (generate_series) into a template database, indexes
built after the rows, then VACUUM ANALYZE; each run scans a fresh clone of it
(CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY). Every inactive user must get exactly
one re-engagement, and nobody else any."""

from __future__ import annotations

import time

from bench.context import Context
from bench.measure import BenchFailure, summarize
from bench.pgdb import Server, query
from bench.report import Row

# (threshold days, share of users inactive that long, goal seconds)
CASES = ((30, 0.03, 2.0), (20, 0.10, 10.0))

SEED = """
INSERT INTO ai_conversations (id, user_id, created_at)
SELECT 'c' || g, 'u' || g, now() - interval '120 days' FROM generate_series(1, %(users)s) g;

INSERT INTO ai_messages (id, conversation_id, user_id, role, content, emotion_score,
                         created_at)
SELECT 'm' || g || '-' || k, 'c' || g, 'u' || g,
       CASE WHEN k %% 2 = 1 THEN 'user' ELSE 'assistant' END,
       'message ' || k || ' of conversation ' || g,
       ((g * 7 + k) %% 11) / 10.0,
       CASE WHEN g %% 100 < 3 THEN now() - interval '45 days'
            WHEN g %% 100 < 10 THEN now() - interval '25 days'
            ELSE now() - (g %% 7 + 1) * interval '1 day' END
         - (%(per_user)s - k) * interval '1 hour'
FROM generate_series(1, %(users)s) g CROSS JOIN generate_series(1, %(per_user)s) k;
"""


def inactive(users: int, days: int) -> int:
    """Users whose last message is older than `days` (by the seed's construction)."""
    cut = 3 if days > 25 else 10
    return sum(1 for g in range(1, users + 1) if g % 100 < cut)


def seed(ctx: Context) -> tuple[str, float, int]:
    """The template database: (name, seconds to seed, bytes on disk)."""
    server: Server = ctx.server
    name = server.create("scantpl")
    ctx.followup_run(name, "db", "upgrade")
    start = time.perf_counter()
    load(server, name, ctx.sizes.scan_users, ctx.sizes.scan_messages_per_user)
    return name, time.perf_counter() - start, server.size(name)


def load(server: Server, name: str, users: int, per_user: int) -> None:
    """Seed a migrated database's conversation memory (SEED), then VACUUM ANALYZE it."""
    conn = server.connect(name, autocommit=True)
    try:
        with conn.cursor() as cur:
            # Bulk load: rows first, indexes after (built by sorting, not row by row), and
            # the foreign-key triggers off for this session only (the rows are consistent
            # by construction).
            cur.execute("SET session_replication_role = replica")
            cur.execute("SET maintenance_work_mem = '512MB'")
            cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
                        "('ai_messages', 'ai_conversations') AND indexname NOT IN "
                        "(SELECT conname FROM pg_constraint)")
            indexes = cur.fetchall()
            for index, _ in indexes:
                cur.execute(f'DROP INDEX "{index}"')
            cur.execute("BEGIN")
            cur.execute(SEED, {"users": users, "per_user": per_user})
            cur.execute("COMMIT")
            for _, definition in indexes:
                cur.execute(definition)
            cur.execute("VACUUM (ANALYZE) ai_conversations, ai_messages")
    finally:
        conn.close()


def one(ctx: Context, template: str, days: int) -> tuple[float, float]:
    """(scan seconds, clone seconds) on a fresh clone."""
    start = time.perf_counter()
    with ctx.server.scratch("scan", template=template, file_copy=True) as db:
        cloned = time.perf_counter() - start
        proc = ctx.followup_run(db, "scan-inactive", "--json", timeout=1800,
                                REENGAGEMENT_INACTIVE_DAYS=str(days))
        expected = inactive(ctx.sizes.scan_users, days)
        scheduled = proc.json().get("scheduled")
        rows, users, pending = query(
            ctx.server, db, "SELECT count(*), count(DISTINCT user_id), "
            "count(*) FILTER (WHERE status = 'pending') FROM scheduled_followups "
            "WHERE trigger_type = 'reengagement'")[0]
        if not scheduled == rows == users == pending == expected:
            raise BenchFailure(
                f"EXACTLY-ONCE VIOLATED in scan-inactive ({days} days): reported "
                f"{scheduled}, {rows} re-engagements for {users} users ({pending} "
                f"pending), expected one each for {expected}")
        return proc.wall, cloned


def run(ctx: Context) -> None:
    users = ctx.sizes.scan_users
    messages = users * ctx.sizes.scan_messages_per_user
    ctx.log(f"seeding {users:,} users / {messages:,} messages into a template")
    template, seeded, size = seed(ctx)
    ctx.log(f"seeded in {seeded:.0f} s, {size / 2**30:.2f} GiB")
    try:
        clones: list[float] = []
        for days, share, goal in CASES:
            times: list[float] = []
            for i in range(ctx.runs):
                seconds, cloned = one(ctx, template, days)
                times.append(seconds)
                clones.append(cloned)
                ctx.log(f"scan-inactive {share:.0%} run {i + 1}: {seconds:.2f} s "
                        f"(clone {cloned:.1f} s)")
            ctx.add(Row("scan", f"scan-inactive, {users:,} users / {messages:,} messages, "
                        f"{share:.0%} inactive ({inactive(users, days):,})",
                        summarize(times), "s", goal=f"≤ {goal:g} s",
                        met=ctx.judge(summarize(times).median <= goal),
                        note=f"whole process; REENGAGEMENT_INACTIVE_DAYS={days}"))
        ctx.add(Row("scan", "seeding the template (generate_series, indexes after, VACUUM "
                    "ANALYZE)", summarize([seeded]), "s",
                    note=f"{size / 2**30:.2f} GiB on disk; a FILE_COPY clone took "
                         f"{summarize(clones).median:.1f} s"))
    finally:
        ctx.server.drop(template)

"""The plans of the hot statements on PostgreSQL, read with EXPLAIN: what the benchmarks
(bench/) measure as speed, checked here as structure, which does not depend on a noisy
machine. Autovacuum may be off, so each plan is checked with and without statistics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from followup_cli.store.conversations import EMOTION_WINDOW, recent_scores_many_query
from followup_cli.store.scanning import candidates_query
from followup_cli.store.sql_text import POSTGRESQL

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 29, 9, tzinfo=UTC)

DUE = """
INSERT INTO scheduled_followups (id, conversation_id, user_id, trigger_type, scheduled_at,
    next_attempt_at, status, template_id, message_content, created_at, retry_count)
SELECT 'f' || lpad(g::text, 6, '0'), 'c' || g, 'u' || g, 'post_event',
    %(at)s - g * interval '1 second', %(at)s - g * interval '1 second', 'pending',
    'post_event_neutral_emotion', 'hello', %(at)s, 0
FROM generate_series(1, 20000) AS g
"""

# 2,000 users, each with one message of their own (half of them 40 days ago: inactive) and
# five assistant messages since yesterday, each in a conversation of its own
MESSAGES = """
INSERT INTO ai_conversations (id, user_id, created_at)
SELECT 'c' || u || '-' || k, 'u' || u, %(at)s - interval '50 days'
FROM generate_series(1, 2000) AS u, generate_series(0, 5) AS k;
INSERT INTO ai_messages (id, conversation_id, user_id, role, content, emotion_score, created_at)
SELECT 'm' || u || '-' || k, 'c' || u || '-' || k, 'u' || u,
    CASE WHEN k = 0 THEN 'user' ELSE 'assistant' END, '', 0.5,
    CASE WHEN k > 0 THEN %(at)s - interval '1 day'
         WHEN u %% 2 = 0 THEN %(at)s - interval '40 days' ELSE %(at)s - interval '2 days' END
FROM generate_series(1, 2000) AS u, generate_series(0, 5) AS k;
"""

# 300 conversations of 12 scored messages, one a minute; every third has two messages at
# its newest minute, so the order must go on to the id
SCORED = """
INSERT INTO ai_conversations (id, user_id, created_at)
SELECT 'sc' || c, 'su' || c, %(at)s - interval '10 days' FROM generate_series(1, 300) AS c;
INSERT INTO ai_messages (id, conversation_id, user_id, role, content, emotion_score, created_at)
SELECT 'sm' || c || '-' || lpad(k::text, 2, '0'), 'sc' || c, 'su' || c, 'user', '', k / 20.0,
    %(at)s - (CASE WHEN c %% 3 = 0 AND k = 10 THEN 1 ELSE 12 - k END) * interval '1 minute'
FROM generate_series(1, 300) AS c, generate_series(0, 11) AS k;
"""


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


@pytest.mark.parametrize("statistics", [False, True])
def test_the_claim_walks_the_due_index_and_never_sorts(pg_engine: sa.Engine, statistics: bool
                                                       ) -> None:
    """Right after a bulk insert (no statistics) the planner sorted every due row for each
    claim of 1,000; the claim's plan settings make it walk the due index in order."""
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(DUE, {"at": NOW})
        if statistics:
            conn.exec_driver_sql("ANALYZE scheduled_followups")
    with pg_engine.begin() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(POSTGRESQL["delivery.claim_plan"][0])
        claim, constants = POSTGRESQL["delivery.claim"]
        cursor.execute("EXPLAIN (FORMAT JSON) " + claim,
                       {**constants, "due": NOW, "n": 1000,
                        "until": NOW + timedelta(minutes=5), "run": "r"})
        [[[doc]]] = cursor.fetchall()
        conn.rollback()
    plan = list(nodes(doc["Plan"]))
    kinds = {n["Node Type"] for n in plan}
    assert not kinds & {"Sort", "Incremental Sort", "Seq Scan", "Bitmap Heap Scan"}, kinds
    assert any(n["Node Type"] == "Index Scan"
               and n.get("Index Name") == "ix_scheduled_followups_due" for n in plan)


@pytest.mark.parametrize("statistics", [False, True])
def test_the_scan_reads_only_the_users_own_messages(pg_engine: sa.Engine, statistics: bool
                                                    ) -> None:
    """The candidate query needs the activity index only: every user's own messages once,
    and one entry per candidate for their conversation; it read every message of every
    candidate (a sequential scan of all messages at a million users). With sequential scans
    off, the rows it reads from ai_messages show which it needs."""
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(MESSAGES, {"at": NOW})
        if statistics:
            conn.exec_driver_sql("ANALYZE ai_messages")
    query = candidates_query(NOW - timedelta(days=30))
    with pg_engine.begin() as conn:
        compiled = query.compile(dialect=conn.dialect)
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        [[doc]] = conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + str(compiled), compiled.params).one()
        candidates = len(conn.execute(query).all())
    assert candidates == 1000
    read = sum((n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"]
               for n in nodes(doc["Plan"]) if n.get("Relation Name") == "ai_messages")
    assert read <= 2000 + candidates  # own messages once, one per candidate


@pytest.mark.parametrize("statistics", [False, True])
def test_template_choice_reads_five_scores_per_conversation_from_the_index(
        pg_engine: sa.Engine, statistics: bool) -> None:
    """The newest five scores of each conversation (scan-inactive looks up thousands in one
    statement): a backward scan of ix_ai_messages_conversation_recent that stops at the
    fifth entry, nothing sorted and, on a vacuumed table, no heap fetched. On the index it
    replaced (conversation_id, created_at) every lookup fetched six rows and sorted them."""
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(SCORED, {"at": NOW})
    with pg_engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "VACUUM ANALYZE ai_messages" if statistics else "VACUUM ai_messages")
    ids = [f"sc{c}" for c in range(1, 301)]
    query = recent_scores_many_query("postgresql")
    with pg_engine.begin() as conn:
        compiled = query.compile(dialect=conn.dialect)
        params = {**compiled.params, "ids": ids}
        [[doc]] = conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + str(compiled), params).one()
        rows = conn.execute(query, {"ids": ids}).all()
    plan = list(nodes(doc["Plan"]))
    kinds = {n["Node Type"] for n in plan}
    assert not kinds & {"Sort", "Incremental Sort", "Seq Scan", "Bitmap Heap Scan"}, kinds
    [scan] = [n for n in plan if n.get("Relation Name") == "ai_messages"]
    assert scan["Node Type"] == "Index Only Scan", scan["Node Type"]
    assert scan["Index Name"] == "ix_ai_messages_conversation_recent"
    assert scan["Heap Fetches"] == 0
    assert scan["Actual Rows"] * scan["Actual Loops"] == EMOTION_WINDOW * len(ids)
    # and the five are the newest: scores 11..7 / 20, the tie at the newest minute by id
    assert len(rows) == EMOTION_WINDOW * len(ids)
    first = [score for cid, score in rows if cid == "sc3"]
    assert first == [k / 20.0 for k in (11, 10, 9, 8, 7)]

"""A large admission stretches the session's statement timeout for its own transaction, so a
million-row import is not cut off by the 30 s guard meant for stuck cron passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from followup_cli.service.admission import ANALYZE_STAGE_MIN, Admission
from followup_cli.store.admission import STAGE_STATISTICS_TARGET, STATEMENT_MS_PER_STAGED_ROW

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def staged_rows(n: int) -> list[dict[str, object]]:
    return [{"seq": i, "id": f"f-{i}", "user_id": f"u{i}", "conversation_id": f"c{i}",
             "trigger_type": "reengagement",
             "template_id": "reengagement_neutral", "message_content": "hello",
             "status": "pending", "scheduled_at": NOW + timedelta(days=1),
             "next_attempt_at": NOW + timedelta(days=1),
             "created_at": NOW, "retry_count": 0, "trigger_data": {"days_inactive": 30}}
            for i in range(n)]


def timeout_in_force(conn: sa.Connection) -> int:
    return int(conn.exec_driver_sql(
        "SELECT setting FROM pg_settings WHERE name = 'statement_timeout'").scalar_one())


@pytest.mark.parametrize("session_ms", [1000, 0])
def test_large_admission_gets_time_in_proportion_to_its_stage(pg_engine: sa.Engine,
                                                              session_ms: int) -> None:
    n = ANALYZE_STAGE_MIN * 2
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(f"SET statement_timeout = {session_ms}")
        admission = Admission(conn, cap=3)
        admission.add(staged_rows(n))
        summary = admission.admit()
        assert summary.admitted == n
        expected = session_ms + int(n * STATEMENT_MS_PER_STAGED_ROW) if session_ms else 0
        assert timeout_in_force(conn) == expected
    with pg_engine.connect() as conn:
        # SET LOCAL: the next transaction has the session's own timeout again
        conn.exec_driver_sql(f"SET statement_timeout = {session_ms}")
        assert timeout_in_force(conn) == session_ms


def test_small_admission_keeps_the_session_timeout(pg_engine: sa.Engine) -> None:
    with pg_engine.begin() as conn:
        conn.exec_driver_sql("SET statement_timeout = 1000")
        admission = Admission(conn, cap=3)
        admission.add(staged_rows(10))
        admission.admit()
        assert timeout_in_force(conn) == 1000


def test_a_large_stage_is_analyzed_with_a_small_sample(pg_engine: sa.Engine) -> None:
    """The waves need the stage's size, not fine histograms: statistics target 10 (a tenth
    of the time of the default's 30,000-row sample), and the session's own target after."""
    n = ANALYZE_STAGE_MIN * 2
    with pg_engine.begin() as conn:
        conn.exec_driver_sql("SET default_statistics_target = 100")
        admission = Admission(conn, cap=3)
        admission.add(staged_rows(n))
        admission.admit()
        reltuples = conn.exec_driver_sql(
            "SELECT reltuples FROM pg_class WHERE oid = 'followup_stage'::regclass"
        ).scalar_one()
        bounds = conn.exec_driver_sql(
            "SELECT array_length(histogram_bounds::text::text[], 1) FROM pg_stats "
            "WHERE tablename = 'followup_stage' AND attname = 'seq'").scalar_one()
        target = conn.exec_driver_sql("SHOW default_statistics_target").scalar_one()
    assert reltuples == n
    assert bounds == STAGE_STATISTICS_TARGET + 1
    assert target == "100"

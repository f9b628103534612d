"""Retention: what goes, what stays, dry runs, batches, confirmation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from followup_cli.db.schema import followup_runs
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.errors import InputError
from followup_cli.service.context import Context
from followup_cli.service.maintenance import cleanup
from followup_cli.store import runs
from tests.helpers import add_followup


def counts(ctx: Context) -> dict[str, int]:
    with ctx.db.transaction(readonly=True) as conn:
        rows = conn.execute(sa.select(sf.c.status, sa.func.count()).group_by(sf.c.status))
        out = {r[0]: int(r[1]) for r in rows}
        out["runs"] = int(conn.execute(
            sa.select(sa.func.count()).select_from(followup_runs)).scalar_one())
    return out


def bulk(ctx: Context, n: int, prefix: str, **fields: Any) -> None:
    now = ctx.now()
    base = {"conversation_id": "c", "user_id": "u", "trigger_type": "post_event",
            "trigger_data": {}, "scheduled_at": now, "next_attempt_at": now,
            "status": "executed", "template_id": "t", "message_content": "m",
            "created_at": now, "retry_count": 0}
    rows = [{**base, **fields, "id": f"{prefix}{i}"} for i in range(n)]
    with ctx.db.transaction() as conn:
        conn.execute(sa.insert(sf), rows)


def add_run(ctx: Context, run_id: str, finished: datetime | None) -> None:
    with ctx.db.transaction() as conn:
        runs.start(conn, run_id=run_id, kind="run-due", host="h", pid=1,
                   started_at=(finished or ctx.now()) - timedelta(seconds=1))
        if finished is not None:
            runs.finish(conn, run_id=run_id, finished_at=finished, status="ok", counts={})


def seed(ctx: Context) -> None:
    now = ctx.now()
    old, recent = now - timedelta(days=91), now - timedelta(days=89)
    add_followup(ctx, id="exec_old", status="executed", executed_at=old,
                 created_at=old - timedelta(days=1))
    add_followup(ctx, id="exec_recent", status="executed", executed_at=recent,
                 created_at=old)  # created long ago, executed recently: kept
    add_followup(ctx, id="fail_old", status="failed", last_attempt_at=old, created_at=old)
    add_followup(ctx, id="fail_recent_attempt", status="failed", last_attempt_at=recent,
                 created_at=old)
    add_followup(ctx, id="cancel_old", status="cancelled", cancelled_at=old, created_at=old)
    add_followup(ctx, id="cancel_recent", status="cancelled", cancelled_at=recent,
                 created_at=old)
    add_followup(ctx, id="pending_old", status="pending", scheduled_at=old, created_at=old)
    add_run(ctx, "run_old", old)
    add_run(ctx, "run_recent", recent)
    add_run(ctx, "run_unfinished", None)


def ids(ctx: Context) -> set[str]:
    with ctx.db.transaction(readonly=True) as conn:
        return {r[0] for r in conn.execute(sa.select(sf.c.id))}


def test_default_retention_is_executed_older_than_90_days(ctx: Context) -> None:
    seed(ctx)
    result = cleanup(ctx)
    assert result.counts == {"executed": 1, "runs": 1}
    assert not result.dry_run
    assert ids(ctx) == {"exec_recent", "fail_old", "fail_recent_attempt", "cancel_old",
                        "cancel_recent", "pending_old"}
    assert counts(ctx)["runs"] == 2  # the recent one and the unfinished one


def test_failed_and_cancelled_on_request_by_the_time_they_ended(ctx: Context) -> None:
    seed(ctx)
    result = cleanup(ctx, include_failed=True, include_cancelled=True)
    assert result.counts == {"executed": 1, "failed": 1, "cancelled": 1, "runs": 1}
    assert result.total == 4
    assert ids(ctx) == {"exec_recent", "fail_recent_attempt", "cancel_recent", "pending_old"}


def test_older_than_days(ctx: Context) -> None:
    seed(ctx)
    result = cleanup(ctx, older_than_days=30, include_failed=True, include_cancelled=True)
    assert result.counts == {"executed": 2, "failed": 2, "cancelled": 2, "runs": 2}
    assert ids(ctx) == {"pending_old"}  # pending is never cleaned up


def test_dry_run_counts_and_changes_nothing(ctx: Context) -> None:
    seed(ctx)
    before = counts(ctx)
    result = cleanup(ctx, include_failed=True, include_cancelled=True, dry_run=True,
                     confirm=lambda _c: pytest.fail("a dry run must not ask"))
    assert result.dry_run
    assert result.counts == {"executed": 1, "failed": 1, "cancelled": 1, "runs": 1}
    assert counts(ctx) == before


def test_confirmation_sees_counts_and_can_abort(ctx: Context) -> None:
    seed(ctx)
    asked: list[dict[str, int]] = []

    def no(found: dict[str, int]) -> bool:
        asked.append(found)
        return False

    before = counts(ctx)
    result = cleanup(ctx, confirm=no)
    assert asked == [{"executed": 1, "runs": 1}]
    assert result.aborted and result.total == 0
    assert counts(ctx) == before


def test_nothing_to_delete_does_not_ask(ctx: Context) -> None:
    result = cleanup(ctx, confirm=lambda _c: pytest.fail("nothing to ask about"))
    assert result.total == 0


def test_negative_age_is_refused(ctx: Context) -> None:
    with pytest.raises(InputError, match="retention"):
        cleanup(ctx, older_than_days=-1)


def test_thousands_of_rows_in_bounded_batches(ctx: Context) -> None:
    now = ctx.now()
    old = now - timedelta(days=100)
    bulk(ctx, 2500, "old", executed_at=old)
    bulk(ctx, 300, "new", executed_at=now)
    result = cleanup(ctx, batch=1000)
    assert result.counts["executed"] == 2500
    assert result.batches == 3  # 1000 + 1000 + 500, each its own transaction
    assert counts(ctx) == {"executed": 300, "runs": 0}


def test_batch_boundary_exact_multiple(ctx: Context) -> None:
    bulk(ctx, 2000, "old", executed_at=ctx.now() - timedelta(days=100))
    result = cleanup(ctx, batch=1000)
    assert result.counts["executed"] == 2000
    assert result.batches == 2


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_cleanup_passes_rows_another_session_holds(ctx: Context, db_url: str) -> None:
    """Rows locked by another transaction (a pass, an operator's psql) are skipped, not
    waited for, and do not end the clean-up early: it deletes all the others, and the next
    clean-up takes the rest."""
    bulk(ctx, 30, "old", executed_at=ctx.now() - timedelta(days=100))
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as holder, holder.begin():
            holder.exec_driver_sql("SELECT id FROM scheduled_followups WHERE id IN "
                                   "('old0', 'old15', 'old29') FOR UPDATE")
            result = cleanup(ctx, batch=10)
            assert result.counts["executed"] == 27
        assert cleanup(ctx, batch=10).counts["executed"] == 3
        assert counts(ctx) == {"runs": 0}
    finally:
        engine.dispose()

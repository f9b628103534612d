"""A writer's users' guard rows are held by one statement (PostgreSQL): inserted when new,
locked when there, and inserted again when forget-user deleted one meanwhile. Another
writer for the same user waits; the statement count does not grow with the users."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from followup_cli.db.schema import followup_user_guards as guards
from followup_cli.store import admission as store
from followup_cli.store import executor

pytestmark = pytest.mark.postgres


def blocked(engine: sa.Engine, user: str) -> bool:
    """Whether another writer's guard statement for `user` has to wait."""
    with engine.connect() as other, other.begin():
        other.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
        try:
            store.lock_users(other, [user])
        except OperationalError as exc:
            assert "lock timeout" in str(exc)
            return True
        return False


def guard_rows(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(guards.c.user_id).order_by(guards.c.user_id))
                    .scalars())


@pytest.mark.parametrize("existing", [True, False], ids=["existing", "new"])
def test_a_held_guard_makes_another_writer_wait(pg_engine: sa.Engine, existing: bool) -> None:
    if existing:
        with pg_engine.begin() as conn:
            conn.execute(sa.insert(guards), [{"user_id": "held"}])
    with pg_engine.connect() as conn, conn.begin():
        store.lock_users(conn, ["held"])
        assert blocked(pg_engine, "held")
        assert not blocked(pg_engine, "someone-else")
    assert not blocked(pg_engine, "held")  # released at commit
    assert guard_rows(pg_engine) == ["held", "someone-else"]


def test_an_existing_guard_is_locked_not_rewritten(pg_engine: sa.Engine) -> None:
    with pg_engine.begin() as conn:
        conn.execute(sa.insert(guards), [{"user_id": "kept"}])
        before = conn.exec_driver_sql(
            "SELECT xmin::text FROM followup_user_guards WHERE user_id = 'kept'").scalar_one()
    with pg_engine.begin() as conn:
        store.lock_users(conn, ["kept"])
    with pg_engine.connect() as conn:
        after = conn.exec_driver_sql(
            "SELECT xmin::text FROM followup_user_guards WHERE user_id = 'kept'").scalar_one()
    assert after == before  # the same row version: no dead tuple per booking


def test_a_guard_deleted_meanwhile_is_inserted_again(pg_engine: sa.Engine) -> None:
    with pg_engine.begin() as conn:
        conn.execute(sa.insert(guards), [{"user_id": "gone"}])
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with pg_engine.connect() as conn, conn.begin():
                store.lock_users(conn, ["gone"])
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            done.set()

    with pg_engine.connect() as forget, forget.begin():
        forget.execute(sa.delete(guards).where(guards.c.user_id == "gone"))
        thread = threading.Thread(target=writer)
        thread.start()
        assert not done.wait(0.5)  # waits for the delete's transaction
    thread.join(10)
    assert done.is_set() and not errors
    assert guard_rows(pg_engine) == ["gone"]


def test_a_bulk_lock_is_one_statement(pg_engine: sa.Engine) -> None:
    sent: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "followup_user_guards" in statement:
            sent.append(statement)

    with pg_engine.begin() as conn:
        conn.execute(sa.insert(guards), [{"user_id": f"u{i}"} for i in range(0, 300, 2)])
    executor.listeners.append(record_text := lambda text: record(None, None, text))
    try:
        with pg_engine.begin() as conn:
            store.lock_users(conn, [f"u{i}" for i in range(300)])
    finally:
        executor.listeners.remove(record_text)
    assert len(sent) == 1
    assert len(guard_rows(pg_engine)) == 300

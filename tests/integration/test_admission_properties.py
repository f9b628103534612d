"""Property: the single path and the bulk path of admission end in the same table, and both
agree with a small in-memory model of the rules (issue 9).

Random sequences of operations over four users and a week of event days are applied to
two databases of the same kind: A takes every schedule one at a time (`schedule
post-event`, `schedule reengagement`, one `retry` per id, one `schedule reengagement` per
inactive user), B takes consecutive schedules as one `schedule import`, a whole retry as one
call, and `scan-inactive`. Cancels, deliveries, failures and new user messages are the same
on both. After every operation, each database must equal its model: the rules applied one
row at a time; an import is all or nothing when a row hits the cap.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from followup_cli.db.schema import (
    ai_conversations,
    ai_messages,
    followup_user_guards,
)
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.errors import RuleViolation
from followup_cli.service.context import Context
from followup_cli.service.importing import ImportRow, import_rows
from followup_cli.service.maintenance import retry
from followup_cli.service.requests import post_event_request, reengagement_request
from followup_cli.service.scanning import scan_inactive
from followup_cli.service.scheduling import (
    cancel_user,
    schedule_post_event,
    schedule_reengagement,
)
from followup_cli.settings import load_settings
from tests.conftest import FakeClock, _pg_url

CAP = 2
BASE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
USERS = ("u0", "u1", "u2", "u3")
# Days since each user last wrote when an example starts (u3 never did).
QUIET_DAYS = {"u0": 40, "u1": 31, "u2": 3}
LIVE = ("pending", "processing")

users = st.sampled_from(USERS)
# Event times a whole number of quarter days apart, so that the ±1 day window's edges are
# hit exactly and often; posts weigh four times any other operation.
KINDS = ["post"] * 4 + ["reengage", "cancel", "deliver", "fail", "retry", "scan", "write"]


def _operation(kind: str) -> st.SearchStrategy[tuple[Any, ...]]:
    if kind == "post":
        return st.tuples(st.just(kind), users, st.integers(0, 3),
                         st.sampled_from([0, 6, 12, 18]))
    if kind == "cancel":
        return st.tuples(st.just(kind), users,
                         st.sampled_from(["post_event", "reengagement"]))
    if kind == "scan":
        return st.tuples(st.just(kind))
    return st.tuples(st.just(kind), users)


operations = st.sampled_from(KINDS).flatmap(_operation)


# --- the model -------------------------------------------------------------------------

@dataclass
class Row:
    user: str
    kind: str
    event: datetime | None
    status: str = "pending"
    created: int = 0


@dataclass
class Model:
    rows: list[Row] = field(default_factory=list)
    active: dict[str, int] = field(default_factory=dict)  # user → tick of last message
    tick: int = 0

    def admit(self, user: str, kind: str, event: datetime | None,
              retried: Row | None = None) -> str:
        """scheduled | duplicate | at_cap: the rules, one row at a time (a retried row does
        not count against itself)."""
        if kind == "post_event":
            assert event is not None
            if any(r.user == user and r.kind == kind and r.status in LIVE
                   and r.event is not None and abs(r.event - event) <= timedelta(days=1)
                   for r in self.rows):
                return "duplicate"
        else:
            last = self.active.get(user)
            if any(r.user == user and r.kind == kind and r is not retried and (
                    r.status in LIVE or (r.status != "cancelled"
                                         and (last is None or r.created > last)))
                   for r in self.rows):
                return "duplicate"
        if sum(r.user == user and r.status in LIVE for r in self.rows) >= CAP:
            return "at_cap"
        self.tick += 1
        self.rows.append(Row(user, kind, event, created=self.tick))
        return "scheduled"

    def oldest(self, user: str, status: str) -> Row | None:
        found = [r for r in self.rows if r.user == user and r.status == status]
        return min(found, key=key_of) if found else None

    def retry(self, user: str) -> None:
        for row in sorted((r for r in self.rows if r.user == user and r.status == "failed"),
                          key=key_of):
            verdict = self.admit(row.user, row.kind, row.event, retried=row)
            if verdict == "scheduled":
                self.rows.pop()  # admit appended a new row: this one comes back instead
                self.tick -= 1
                row.status = "pending"

    def table(self) -> Counter[tuple[Any, ...]]:
        return Counter((r.user, r.kind, r.event, r.status) for r in self.rows)


def key_of(row: Any) -> tuple[Any, ...]:
    """A content order for picking "the oldest" row the same way in model and database."""
    event = row.event if isinstance(row, Row) else row["event_at"]
    kind = row.kind if isinstance(row, Row) else row["trigger_type"]
    return (kind, event or BASE)


# --- the databases ---------------------------------------------------------------------

def table(ctx: Context) -> Counter[tuple[Any, ...]]:
    with ctx.db.transaction(readonly=True) as conn:
        return Counter((r.user_id, r.trigger_type, r.event_at, r.status) for r in conn.execute(
            sa.select(sf.c.user_id, sf.c.trigger_type, sf.c.event_at, sf.c.status)))


def reset(ctx: Context, clock: FakeClock) -> None:
    clock.now = BASE
    with ctx.db.transaction() as conn:
        for t in (sf, followup_user_guards, ai_messages, ai_conversations):
            conn.execute(sa.delete(t))
        for user, days in QUIET_DAYS.items():
            conn.execute(sa.insert(ai_conversations).values(
                id=f"c-{user}", user_id=user, created_at=BASE - timedelta(days=90)))
            conn.execute(sa.insert(ai_messages).values(
                id=f"m-{user}-0", conversation_id=f"c-{user}", user_id=user, role="user",
                content="hi", emotion_score=0.5, created_at=BASE - timedelta(days=days)))


def set_status(ctx: Context, user: str, status: str) -> None:
    """The oldest pending row of the user becomes `status` (a delivery or a failure)."""
    with ctx.db.transaction() as conn:
        rows = [dict(r) for r in conn.execute(
            sa.select(sf.c.id, sf.c.trigger_type, sf.c.event_at)
            .where(sf.c.user_id == user, sf.c.status == "pending")).mappings()]
        if rows:
            chosen = min(rows, key=key_of)
            conn.execute(sa.update(sf).where(sf.c.id == chosen["id"]).values(status=status))


def write(ctx: Context, user: str, n: int) -> None:
    with ctx.db.transaction() as conn:
        if conn.execute(sa.select(ai_conversations.c.id).where(
                ai_conversations.c.id == f"c-{user}")).first() is None:
            conn.execute(sa.insert(ai_conversations).values(
                id=f"c-{user}", user_id=user, created_at=ctx.now()))
        conn.execute(sa.insert(ai_messages).values(
            id=f"m-{user}-{n}", conversation_id=f"c-{user}", user_id=user, role="user",
            content="back", emotion_score=0.9, created_at=ctx.now()))


def failed_ids(ctx: Context, user: str) -> list[str]:
    with ctx.db.transaction(readonly=True) as conn:
        rows = [dict(r) for r in conn.execute(
            sa.select(sf.c.id, sf.c.trigger_type, sf.c.event_at)
            .where(sf.c.user_id == user, sf.c.status == "failed")).mappings()]
    return [r["id"] for r in sorted(rows, key=key_of)]


def inactive_users(ctx: Context) -> list[str]:
    """Who scan-inactive would consider, in its order (longest inactive first)."""
    with ctx.db.transaction(readonly=True) as conn:
        rows = conn.execute(
            sa.select(ai_messages.c.user_id, sa.func.max(ai_messages.c.created_at))
            .where(ai_messages.c.role == "user").group_by(ai_messages.c.user_id)).all()
    cutoff = ctx.now() - timedelta(days=30)
    return [u for u, at in sorted(rows, key=lambda r: (r[1], r[0])) if at <= cutoff]


def event_of(day: int, hour: int) -> datetime:
    return BASE + timedelta(days=day, hours=hour)


def post_request(ctx: Context, user: str, event: datetime) -> Any:
    return post_event_request(ctx.settings.timezone, user_id=user, conversation_id=f"c-{user}",
                              event_date=event.isoformat())


def run_ops(single: Context, bulk: Context, clocks: tuple[FakeClock, FakeClock],
            ops: list[tuple[Any, ...]]) -> None:
    model_single, model_bulk = Model(), Model()
    for model in (model_single, model_bulk):
        model.active = {u: -1 for u in QUIET_DAYS}
    writes = itertools.count(1)
    pending_import: list[tuple[Any, ...]] = []

    def tick() -> None:
        for clock in clocks:
            clock.advance(seconds=1)

    def flush_import() -> None:
        if not pending_import:
            return
        rows = []
        for line, op in enumerate(pending_import, start=1):
            if op[0] == "post":
                rows.append(ImportRow(line, post_request(bulk, op[1], event_of(op[2], op[3]))))
            else:
                rows.append(ImportRow(line, reengagement_request(
                    bulk.settings.timezone, user_id=op[1], days_inactive=31)))
        trial = Model([Row(**vars(r)) for r in model_bulk.rows], dict(model_bulk.active),
                      model_bulk.tick)
        verdicts = [trial.admit(op[1], "post_event" if op[0] == "post" else "reengagement",
                                event_of(op[2], op[3]) if op[0] == "post" else None)
                    for op in pending_import]
        if "at_cap" in verdicts:
            with pytest.raises(RuleViolation):
                import_rows(bulk, rows)
        else:
            result = import_rows(bulk, rows)
            assert result.scheduled == verdicts.count("scheduled")
            assert result.duplicates_total == verdicts.count("duplicate")
            model_bulk.rows, model_bulk.tick = trial.rows, trial.tick
        pending_import.clear()
        tick()

    for op in ops:
        name = op[0]
        if name in ("post", "reengage"):
            user = op[1]
            kind = "post_event" if name == "post" else "reengagement"
            event = event_of(op[2], op[3]) if name == "post" else None
            expected = model_single.admit(user, kind, event)
            try:
                if event is not None:
                    got = schedule_post_event(single, post_request(single, user, event)).status
                else:
                    got = schedule_reengagement(single, reengagement_request(
                        single.settings.timezone, user_id=user, days_inactive=31)).status
            except RuleViolation:
                got = "at_cap"
            assert got == expected, op
            pending_import.append(op)
            tick()
            continue
        flush_import()
        if name == "cancel":
            for ctx, model in ((single, model_single), (bulk, model_bulk)):
                cancel_user(ctx, op[1], op[2])
                for r in model.rows:
                    if r.user == op[1] and r.kind == op[2] and r.status == "pending":
                        r.status = "cancelled"
        elif name in ("deliver", "fail"):
            status = "executed" if name == "deliver" else "failed"
            for ctx, model in ((single, model_single), (bulk, model_bulk)):
                set_status(ctx, op[1], status)
                row = model.oldest(op[1], "pending")
                if row is not None:
                    row.status = status
        elif name == "retry":
            for fid in failed_ids(single, op[1]):
                retry(single, [fid])
            ids = failed_ids(bulk, op[1])
            if ids:
                retry(bulk, ids)
            model_single.retry(op[1])
            model_bulk.retry(op[1])
        elif name == "scan":
            for user in inactive_users(single):
                model_single.admit(user, "reengagement", None)
                with contextlib.suppress(RuleViolation):
                    schedule_reengagement(single, reengagement_request(
                        single.settings.timezone, user_id=user))
            for user in inactive_users(bulk):
                model_bulk.admit(user, "reengagement", None)
            scan_inactive(bulk)
        elif name == "write":
            n = next(writes)
            for ctx, model in ((single, model_single), (bulk, model_bulk)):
                write(ctx, op[1], n)
                model.tick += 1
                model.active[op[1]] = model.tick
        tick()
        assert table(single) == model_single.table(), ops
        assert table(bulk) == model_bulk.table(), ops
    flush_import()
    assert table(single) == model_single.table(), ops
    assert table(bulk) == model_bulk.table(), ops


@pytest.fixture
def other_url(db_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A second database of the same kind, migrated."""
    if db_url.startswith("sqlite"):
        path = tmp_path / "other.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server = request.getfixturevalue("pg_server")
    name = server.create()
    yield _pg_url(name)
    server.drop(name)


@pytest.fixture
def contexts(db_url: str, other_url: str):
    """Two databases of the kind under test: A (single path) and B (bulk path)."""
    other = other_url
    clocks = (FakeClock(BASE), FakeClock(BASE))
    made = [Context(load_settings({"DATABASE_URL": url,
                                   "FOLLOWUP_MAX_PENDING_PER_USER": str(CAP)}), clock=clock)
            for url, clock in zip((db_url, other), clocks, strict=True)]
    yield made[0], made[1], clocks
    for ctx in made:
        ctx.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(ops=st.lists(operations, min_size=1, max_size=14))
def test_single_and_bulk_paths_agree_with_the_model(contexts: Any,
                                                    ops: list[tuple[Any, ...]]) -> None:
    single, bulk, clocks = contexts
    for ctx, clock in zip((single, bulk), clocks, strict=True):
        reset(ctx, clock)
    run_ops(single, bulk, clocks, ops)

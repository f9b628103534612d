"""A Hypothesis state machine of a follow-up's whole lifecycle (issue 8), on SQLite and
PostgreSQL, against an in-memory model of the rules.

Steps: schedule, a full delivery pass (each user's sends succeed, fail for a while or fail
for good), a pass that claims and dies (crash), time passing (a second, or two hours: long
enough for every backoff and lease), cancel, retry, cleanup. After every step the table
equals the model (status and retry count of every follow-up), and every executed follow-up
was delivered exactly once: a crash here happens before any send, so nothing may arrive
twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from followup_cli.db.schema import followup_runs, followup_user_guards
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.errors import DeliveryError, ExitCode, RuleViolation
from followup_cli.service.context import Context
from followup_cli.service.delivery import PassOptions, run_due
from followup_cli.service.maintenance import cleanup, retry
from followup_cli.service.requests import post_event_request
from followup_cli.service.scheduling import cancel_ids, schedule_post_event
from followup_cli.service.senders import MemorySender
from followup_cli.settings import load_settings
from followup_cli.store import delivery as store
from tests.conftest import FakeClock

CAP, MAX_RETRIES, LEASE = 3, 1, 600
USERS = ("u0", "u1")
# Retries and crashes must pile up on one row for the interesting cases: transient is likely.
MODES = st.sampled_from(["ok", "transient", "transient", "permanent"])


@dataclass
class Row:
    user: str
    status: str = "pending"
    retries: int = 0
    due: datetime | None = None  # next attempt (pending)
    lease_end: datetime | None = None  # processing: the dead pass's lease
    ended: datetime | None = None  # executed, failed or cancelled at


def make_machine(url: str) -> type[RuleBasedStateMachine]:
    class Lifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
            self.ctx = Context(load_settings({
                "DATABASE_URL": url, "FOLLOWUP_MAX_PENDING_PER_USER": str(CAP),
                "FOLLOWUP_MAX_RETRIES": str(MAX_RETRIES),
                "FOLLOWUP_LEASE_SECONDS": str(LEASE)}), clock=self.clock)
            with self.ctx.db.transaction() as conn:
                for table in (sf, followup_runs, followup_user_guards):
                    conn.execute(sa.delete(table))
            self.rows: dict[str, Row] = {}
            self.delivered: Counter[str] = Counter()
            self.events = 0

        def teardown(self) -> None:
            self.ctx.close()

        # --- the model's helpers -----------------------------------------------------

        def now(self) -> datetime:
            return self.clock.now

        def live(self, user: str) -> int:
            return sum(r.user == user and r.status in ("pending", "processing")
                       for r in self.rows.values())

        def ids(self) -> list[str]:
            # Creation order, not the ids' own order: they are random, the steps must not be
            return list(self.rows)

        # --- steps -------------------------------------------------------------------

        @rule(user=st.sampled_from(USERS))
        def schedule(self, user: str) -> None:
            self.events += 1  # a new event each time, days apart: never a duplicate
            event = self.now() - timedelta(days=30) + timedelta(days=3 * self.events)
            request = post_event_request(self.ctx.settings.timezone, user_id=user,
                                         conversation_id="c", event_date=event.isoformat(),
                                         delay_hours=0)
            if self.live(user) >= CAP:
                with pytest.raises(RuleViolation):
                    schedule_post_event(self.ctx, request)
                return
            result = schedule_post_event(self.ctx, request)
            assert result.status == "scheduled"
            self.rows[result.id] = Row(user, due=event)

        @rule(modes=st.fixed_dictionaries({u: MODES for u in USERS}))
        def deliver(self, modes: dict[str, str]) -> None:
            fail: dict[str, DeliveryError] = {}
            for fid, row in self.rows.items():
                if modes[row.user] != "ok":
                    fail[fid] = DeliveryError("down", transient=modes[row.user] == "transient")
            sender = MemorySender(fail)
            run_due(self.ctx, PassOptions(batch_size=2), sender=sender)
            self.delivered.update(p["id"] for p in sender.payloads)
            now = self.now()
            for row in self.rows.values():  # recovery of dead passes' claims first
                if row.status == "processing" and row.lease_end is not None \
                        and row.lease_end < now:
                    row.retries += 1
                    row.lease_end = None
                    if row.retries > MAX_RETRIES + 1:
                        row.status, row.ended = "failed", now
                    else:
                        row.status, row.due = "pending", now
            for row in self.rows.values():
                if row.status != "pending" or row.due is None or row.due > now:
                    continue
                mode = modes[row.user]
                if mode == "ok":
                    row.status, row.ended = "executed", now
                    continue
                row.retries += 1
                if mode == "permanent" or row.retries > MAX_RETRIES:
                    row.status, row.ended = "failed", now
                else:
                    row.due = now + timedelta(seconds=30)  # at least 48 s: not due in 1 s

        @rule(n=st.integers(1, 3))
        def crash_after_claim(self, n: int) -> None:
            """A pass claims and is killed before it sends anything."""
            now = self.now()
            with self.ctx.db.transaction() as conn:
                got = store.claim_due(conn, due_before=now, limit=n, run_id="dead",
                                      locked_until=now + timedelta(seconds=LEASE))
            due = sorted((r.due, fid) for fid, r in self.rows.items()
                         if r.status == "pending" and r.due is not None and r.due <= now)
            assert len(got) == min(n, len(due))
            for claimed in got:
                row = self.rows[claimed.id]
                assert row.status == "pending"
                row.status, row.lease_end = "processing", now + timedelta(seconds=LEASE)

        @rule(big=st.booleans())
        def time_passes(self, big: bool) -> None:
            self.clock.advance(hours=2) if big else self.clock.advance(seconds=1)

        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            if not self.rows:
                return
            fid = data.draw(st.sampled_from(self.ids()))
            row = self.rows[fid]
            result = cancel_ids(self.ctx, [fid])
            if row.status == "pending":
                assert result.exit_code == ExitCode.OK
                row.status, row.ended = "cancelled", self.now()
            elif row.status == "cancelled":
                assert result.exit_code == ExitCode.OK
            else:
                assert result.exit_code == ExitCode.REFUSED

        @rule(data=st.data())
        def retry_one(self, data: st.DataObject) -> None:
            if not self.rows:
                return
            fid = data.draw(st.sampled_from(self.ids()))
            row = self.rows[fid]
            result = retry(self.ctx, [fid])
            if row.status == "failed" and self.live(row.user) < CAP:
                assert result.retried == [fid]
                row.status, row.retries, row.due, row.ended = "pending", 0, self.now(), None
            else:
                assert result.retried == [] and result.exit_code == ExitCode.REFUSED

        @rule(include_failed=st.booleans(), include_cancelled=st.booleans())
        def clean_up(self, include_failed: bool, include_cancelled: bool) -> None:
            cleanup(self.ctx, older_than_days=0.0001, include_failed=include_failed,
                    include_cancelled=include_cancelled)
            cutoff = self.now() - timedelta(days=0.0001)
            kinds = {"executed"} | ({"failed"} if include_failed else set()) | (
                {"cancelled"} if include_cancelled else set())
            for fid in list(self.rows):
                row = self.rows[fid]
                if row.status in kinds and row.ended is not None and row.ended < cutoff:
                    del self.rows[fid]

        # --- what must always hold ---------------------------------------------------

        @invariant()
        def the_table_is_the_model(self) -> None:
            with self.ctx.db.transaction(readonly=True) as conn:
                table = {r.id: (r.status, r.retry_count) for r in conn.execute(
                    sa.select(sf.c.id, sf.c.status, sf.c.retry_count))}
            assert table == {fid: (r.status, r.retries) for fid, r in self.rows.items()}

        @invariant()
        def each_delivery_happened_once(self) -> None:
            assert all(n == 1 for n in self.delivered.values())
            executed = {fid for fid, r in self.rows.items() if r.status == "executed"}
            assert executed <= set(self.delivered)

    return Lifecycle


def test_the_lifecycle_follows_the_model(db_url: str) -> None:
    machine: Any = make_machine(db_url)
    # Many runs: the telling cases need a row to go through several steps in a row (fail,
    # crash, lease out, recover...). PostgreSQL's steps cost more; SQLite runs the most.
    examples = 300 if db_url.startswith("sqlite") else 80
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))

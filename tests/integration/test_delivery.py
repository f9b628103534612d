"""The delivery pass on real SQLite and real PostgreSQL: outcomes, retries, leases, the
send window, the switch, the run record. Time is the FakeClock's."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from followup_cli.db.schema import followup_runs
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.errors import DatabaseError, DeliveryError, InputError
from followup_cli.service.context import Context
from followup_cli.service.delivery import PassOptions, run_due
from followup_cli.service.senders import LogSender, MemorySender
from followup_cli.store import delivery as store
from tests.conftest import PG_ADMIN_URL, FakeClock, MakeCtx


def make_rows(n: int, at: datetime, *, prefix: str = "f", user: str | None = None
              ) -> list[dict[str, Any]]:
    return [{
        "id": f"{prefix}-{i:06d}", "conversation_id": f"c{i}", "user_id": user or f"u{i}",
        "trigger_type": "post_event",
        "trigger_data": {"event_date": (at - timedelta(days=1)).isoformat(),
                         "booking_id": f"B{i}", "custom_message": None},
        "scheduled_at": at, "next_attempt_at": at, "status": "pending",
        "template_id": "post_event_neutral_emotion", "message_content": f"Hello number {i}",
        "created_at": at - timedelta(days=1), "retry_count": 0,
        "event_at": at - timedelta(days=1),
    } for i in range(n)]


def add_due(ctx: Context, n: int, *, minutes_ago: float = 5, prefix: str = "f",
            **kw: Any) -> list[str]:
    """n pending follow-ups, due `minutes_ago` minutes before the context's now."""
    rows = make_rows(n, ctx.now() - timedelta(minutes=minutes_ago), prefix=prefix, **kw)
    with ctx.db.transaction() as conn:
        conn.execute(sa.insert(sf), rows)
    return [r["id"] for r in rows]


def by_id(ctx: Context) -> dict[str, dict[str, Any]]:
    with ctx.db.transaction(readonly=True) as conn:
        return {r["id"]: dict(r) for r in conn.execute(sa.select(sf)).mappings()}


def run_records(ctx: Context) -> list[dict[str, Any]]:
    with ctx.db.transaction(readonly=True) as conn:
        return [dict(r) for r in conn.execute(
            sa.select(followup_runs).order_by(followup_runs.c.started_at)).mappings()]


def transient(message: str = "receiver down", retry_after: float | None = None
              ) -> DeliveryError:
    return DeliveryError(message, transient=True, retry_after=retry_after)


class OneByOne:
    """A sender that sends one follow-up at a time, like a webhook (no batch), after
    `delay` seconds; `fail` maps ids to what to raise."""

    def __init__(self, delay: float = 0.0, deadline: float = 10.0,
                 fail: dict[str, Exception] | None = None) -> None:
        self.delay, self.deadline, self.fail = delay, deadline, fail or {}
        self.payloads: list[dict[str, Any]] = []

    def send(self, payload: dict[str, Any], deadline_at: float) -> None:
        time.sleep(self.delay)
        error = self.fail.get(payload["id"])
        if error is not None:
            raise error
        self.payloads.append(payload)


class StopsAfterThree(OneByOne):
    """SIGTERM arrives (`stop(15)`) during the third send."""

    def __init__(self, stop: Any) -> None:
        super().__init__()
        self.stop = stop

    def send(self, payload: dict[str, Any], deadline_at: float) -> None:
        super().send(payload, deadline_at)
        if len(self.payloads) == 3:
            self.stop(15)


# --- delivering -------------------------------------------------------------------------

def test_delivers_every_due_one_and_marks_it_executed(ctx: Context, clock: FakeClock) -> None:
    ids = add_due(ctx, 5)
    later = add_due(ctx, 2, minutes_ago=-10, prefix="later")  # not due yet
    sender = MemorySender()
    result = run_due(ctx, PassOptions(batch_size=2), sender=sender)
    assert (result.claimed, result.executed, result.retried, result.failed) == (5, 0 + 5, 0, 0)
    assert [p["id"] for p in sender.payloads] == ids  # oldest first
    rows = by_id(ctx)
    for fid in ids:
        row = rows[fid]
        assert row["status"] == "executed"
        assert row["executed_at"] == clock.now
        assert row["last_attempt_at"] == clock.now
        assert row["locked_by"] is None and row["locked_until"] is None
        assert row["scheduled_at"] == clock.now - timedelta(minutes=5)
    assert all(rows[fid]["status"] == "pending" for fid in later)


def test_payload_fields(ctx: Context) -> None:
    [fid] = add_due(ctx, 1)
    sender = MemorySender()
    run_due(ctx, sender=sender)
    [p] = sender.payloads
    assert p["id"] == p["idempotency_key"] == fid
    assert p["user_id"] == "u0" and p["conversation_id"] == "c0"
    assert p["trigger_type"] == "post_event"
    assert p["template_id"] == "post_event_neutral_emotion"
    assert p["message"] == "Hello number 0"
    assert p["scheduled_at"] == (ctx.now() - timedelta(minutes=5)).isoformat()
    assert p["trigger_data"]["booking_id"] == "B0"
    assert p["attempt"] == 1


def test_second_pass_delivers_nothing_again(ctx: Context) -> None:
    add_due(ctx, 3)
    sender = MemorySender()
    run_due(ctx, sender=sender)
    again = run_due(ctx, sender=sender)
    assert again.claimed == 0 and len(sender.payloads) == 3


def test_log_sender_returns_the_deliveries(ctx: Context) -> None:
    ids = add_due(ctx, 3)
    result = run_due(ctx, PassOptions(batch_size=2), sender=LogSender())
    assert [d["id"] for d in result.deliveries] == ids
    assert [d["id"] for d in result.to_json()["deliveries"]] == ids


def test_concurrency_sends_in_parallel_threads(ctx: Context) -> None:
    ids = add_due(ctx, 40)
    sender = MemorySender()
    result = run_due(ctx, PassOptions(batch_size=10, concurrency=4), sender=sender)
    assert result.executed == 40
    assert sorted(p["id"] for p in sender.payloads) == ids


class CountingLock:
    """A lock that counts how often it is taken (for the futures' conditions)."""

    taken = 0

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        CountingLock.taken += 1  # approximate under threads: enough for a bound
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()


def test_collecting_a_finished_send_does_not_touch_the_sends_still_in_flight(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass's thread collects every finished send; that must not cost a lock round
    trip per send still in flight (concurrent.futures.wait takes and releases the lock of
    every future it is given, on every call: at --concurrency 64 the pass sent 904/s
    instead of 981-994/s against a 50 ms receiver)."""
    from concurrent.futures import Future

    init = Future.__init__

    def counted(self: Future[Any]) -> None:
        init(self)
        self._condition = threading.Condition(CountingLock())  # type: ignore[arg-type]

    monkeypatch.setattr(Future, "__init__", counted)
    CountingLock.taken = 0
    ids = add_due(ctx, 640)
    sender = OneByOne(delay=0.005)
    result = run_due(ctx, PassOptions(batch_size=640, concurrency=64), sender=sender)
    assert result.executed == 640
    assert sorted(p["id"] for p in sender.payloads) == ids
    per_send = CountingLock.taken / 640
    # 5 a send (submit, run, result, callback, collection); 21-31 when each collection
    # waits on every future in flight
    assert 1 <= per_send < 10, per_send


def test_outcomes_are_written_back_while_a_slow_send_is_in_flight(
        make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch) -> None:
    """DESIGN: every outcome is written back within about a second of its send, never more
    than 2 s. At the default concurrency of 1 a one-by-one sender (webhook, command) sent
    in the pass's own thread, so what was sent waited for a slow send to end (3.2 s)."""
    from followup_cli.db.engine import Database

    ctx = make_ctx(FOLLOWUP_LEASE_SECONDS=600)
    add_due(ctx, 30)
    sent_at: dict[str, float] = {}
    written_at: dict[str, float] = {}
    writing: list[str] = []
    real_mark, real_statements = store.mark_executed, Database.statements

    class SlowTwentyFirst(OneByOne):
        def send(self, payload: dict[str, Any], deadline_at: float) -> None:
            time.sleep(3.0 if len(self.payloads) == 20 else 0.01)
            super().send(payload, deadline_at)
            sent_at[payload["id"]] = time.monotonic()

    def mark(conn: Any, run_id: str, done: Any) -> None:
        writing.extend(fid for fid, _ in done)
        real_mark(conn, run_id, done)

    @contextlib.contextmanager
    def statements(db: Database, **kw: Any) -> Iterator[Any]:
        with real_statements(db, **kw) as sql:
            yield sql
        now = time.monotonic()  # committed
        written_at.update((fid, now) for fid in writing)
        writing.clear()

    monkeypatch.setattr(store, "mark_executed", mark)
    monkeypatch.setattr(Database, "statements", statements)
    result = run_due(ctx, PassOptions(), sender=SlowTwentyFirst())
    assert result.executed == 30 and set(written_at) == set(sent_at)
    worst = max(written_at[fid] - sent_at[fid] for fid in sent_at)
    assert worst <= 2.0, f"an outcome waited {worst:.2f} s to be written back"


@pytest.mark.parametrize("concurrency", [1, 4])
def test_the_pass_waits_without_spinning_while_a_slow_send_is_in_flight(
        ctx: Context, monkeypatch: pytest.MonkeyPatch, concurrency: int) -> None:
    """Nothing left to claim or write, one send taking a second: the pass's thread must
    sleep until it ends (it looped about 300,000 times a second, a whole core, once half
    a second had passed since its last write-back)."""
    from followup_cli.service import delivery

    add_due(ctx, 1)
    calls = [0]
    collect = delivery._Pass._collect

    def counted(self: Any, wait: float) -> None:
        calls[0] += 1
        collect(self, wait)

    monkeypatch.setattr(delivery._Pass, "_collect", counted)
    result = run_due(ctx, PassOptions(concurrency=concurrency), sender=OneByOne(delay=1.5))
    assert result.executed == 1
    assert calls[0] < 20, calls[0]  # one wake-up per FLUSH_SECONDS at most, and the end


def test_limit(ctx: Context) -> None:
    add_due(ctx, 7)
    result = run_due(ctx, PassOptions(batch_size=3, limit=5), sender=MemorySender())
    assert result.claimed == result.executed == 5
    assert result.stopped == "limit"
    assert sum(r["status"] == "pending" for r in by_id(ctx).values()) == 2


def test_time_budget_stops_claiming_and_finishes_what_is_held(ctx: Context) -> None:
    add_due(ctx, 10)
    sender = OneByOne(delay=0.2)
    result = run_due(ctx, PassOptions(batch_size=1, time_budget=0.3), sender=sender)
    assert result.stopped == "time_budget"
    assert 1 <= result.claimed < 10
    assert result.executed == result.claimed == len(sender.payloads)
    states = [r["status"] for r in by_id(ctx).values()]
    assert states.count("executed") == result.claimed
    assert states.count("pending") == 10 - result.claimed  # nothing left processing


def test_a_sender_bug_is_recorded_and_the_pass_goes_on(ctx: Context) -> None:
    ids = add_due(ctx, 3)
    result = run_due(ctx, sender=OneByOne(fail={ids[1]: KeyError("oops")}))
    assert (result.executed, result.retried) == (2, 1)
    row = by_id(ctx)[ids[1]]
    assert row["status"] == "pending" and "KeyError" in row["error_message"]


def test_a_batch_sender_bug_fails_its_batch_transiently(ctx: Context) -> None:
    add_due(ctx, 3)

    class Broken(MemorySender):
        def send_many(self, payloads: Any) -> list[DeliveryError | None]:
            raise RuntimeError("disk on fire")

    result = run_due(ctx, sender=Broken())
    assert (result.executed, result.retried) == (0, 3)
    assert {r["status"] for r in by_id(ctx).values()} == {"pending"}


def test_webhook_end_to_end_signed_and_retry_after(make_ctx: MakeCtx, clock: FakeClock
                                                  ) -> None:
    from standardwebhooks import Webhook

    from tests.unit.test_senders_webhook import SECRET, Receiver

    receiver = Receiver()
    try:
        ctx = make_ctx(FOLLOWUP_SENDER=f"webhook:{receiver.url}/ok",
                       FOLLOWUP_WEBHOOK_SECRET=SECRET)
        ids = add_due(ctx, 3)
        result = run_due(ctx, PassOptions(concurrency=3))
        assert result.executed == 3
        bodies = {Webhook(SECRET).verify(body, headers)["id"]
                  for _, headers, body in receiver.requests}
        assert bodies == set(ids)

        busy = make_ctx(FOLLOWUP_SENDER=f"webhook:{receiver.url}/429")
        [fid] = add_due(busy, 1, prefix="busy")
        assert run_due(busy).retried == 1
        row = by_id(busy)[fid]
        assert row["next_attempt_at"] == clock.now + timedelta(seconds=120)
        assert row["error_message"].startswith("webhook answered HTTP 429")
    finally:
        receiver.close()


# --- retries ----------------------------------------------------------------------------

def test_transient_failures_back_off_then_fail(make_ctx: MakeCtx, clock: FakeClock) -> None:
    ctx = make_ctx(FOLLOWUP_MAX_RETRIES=2)
    [fid] = add_due(ctx, 1)
    scheduled = clock.now - timedelta(minutes=5)
    sender = MemorySender(fail={fid: transient("HTTP 503")})

    first = run_due(ctx, sender=sender)
    assert (first.retried, first.failed) == (1, 0)
    row = by_id(ctx)[fid]
    assert row["status"] == "pending" and row["retry_count"] == 1
    assert row["error_message"] == "HTTP 503"
    wait = (row["next_attempt_at"] - clock.now).total_seconds()
    assert 48 <= wait <= 72  # 60 s × [0.8, 1.2]
    assert row["scheduled_at"] == scheduled  # never moves

    assert run_due(ctx, sender=sender).claimed == 0  # not due during the backoff
    clock.advance(seconds=wait + 1)
    second = run_due(ctx, sender=sender)
    row = by_id(ctx)[fid]
    assert second.retried == 1 and row["retry_count"] == 2
    wait = (row["next_attempt_at"] - clock.now).total_seconds()
    assert 96 <= wait <= 144

    clock.advance(seconds=wait + 1)
    third = run_due(ctx, sender=sender)
    row = by_id(ctx)[fid]
    assert third.failed == 1 and row["status"] == "failed"
    assert row["retry_count"] == 3 and row["error_message"] == "HTTP 503"
    assert row["scheduled_at"] == scheduled
    assert third.problems[0]["status"] == "failed"

    clock.advance(hours=5)
    assert run_due(ctx, sender=sender).claimed == 0  # failed is final


def test_success_after_a_retry(ctx: Context, clock: FakeClock) -> None:
    [fid] = add_due(ctx, 1)
    sender = MemorySender(fail={fid: transient()})
    run_due(ctx, sender=sender)
    sender.fail.clear()
    clock.advance(minutes=2)
    result = run_due(ctx, sender=sender)
    row = by_id(ctx)[fid]
    assert result.executed == 1 and row["status"] == "executed"
    assert row["retry_count"] == 1 and sender.payloads[0]["attempt"] == 2
    # the guide's delay metric still counts from the original time
    assert row["executed_at"] - row["scheduled_at"] == timedelta(minutes=7)


def test_an_error_text_with_a_nul_byte_is_written_back(ctx: Context) -> None:
    """A command's last stderr line may carry a NUL byte: PostgreSQL's text cannot hold
    it, and psycopg2 refused the whole write-back (ValueError: exit 1, every outcome of it
    lost, delivered rows left processing)."""
    ids = add_due(ctx, 2)
    sender = OneByOne(fail={ids[1]: DeliveryError("command exited with 1: bad\x00byte",
                                                  transient=True)})
    result = run_due(ctx, PassOptions(batch_size=2), sender=sender)
    assert result.executed == 1 and result.retried == 1
    rows = by_id(ctx)
    assert rows[ids[0]]["status"] == "executed"
    assert rows[ids[1]]["status"] == "pending"
    assert rows[ids[1]]["error_message"] == "command exited with 1: bad\ufffdbyte"


def test_permanent_failure_fails_at_once(ctx: Context) -> None:
    [fid] = add_due(ctx, 1)
    sender = MemorySender(fail={fid: DeliveryError("HTTP 400 Bad Request", transient=False)})
    result = run_due(ctx, sender=sender)
    row = by_id(ctx)[fid]
    assert result.failed == 1 and row["status"] == "failed"
    assert row["retry_count"] == 1 and row["error_message"] == "HTTP 400 Bad Request"


def test_retry_after_longer_than_backoff_is_honoured(ctx: Context, clock: FakeClock) -> None:
    [fid] = add_due(ctx, 1)
    run_due(ctx, sender=MemorySender(fail={fid: transient("HTTP 429", retry_after=7200)}))
    row = by_id(ctx)[fid]
    assert row["next_attempt_at"] == clock.now + timedelta(seconds=7200)


def test_one_failure_does_not_stop_the_others(ctx: Context) -> None:
    ids = add_due(ctx, 5)
    sender = MemorySender(fail={ids[2]: transient()})
    result = run_due(ctx, PassOptions(batch_size=2), sender=sender)
    assert (result.executed, result.retried) == (4, 1)


# --- leases -----------------------------------------------------------------------------

def claim_as_dead_pass(ctx: Context, n: int) -> list[str]:
    """What a pass that was SIGKILLed after claiming leaves behind."""
    now = ctx.now()
    lease = timedelta(seconds=ctx.settings.lease_seconds)
    with ctx.db.transaction() as conn:
        rows = store.claim_due(conn, due_before=now, limit=n, run_id="dead-pass",
                               locked_until=now + lease)
    return [r.id for r in rows]


def test_a_live_lease_is_never_taken(make_ctx: MakeCtx, clock: FakeClock) -> None:
    ctx = make_ctx(FOLLOWUP_LEASE_SECONDS=600)
    add_due(ctx, 5)
    held = claim_as_dead_pass(ctx, 2)
    clock.advance(seconds=599)
    sender = MemorySender()
    result = run_due(ctx, sender=sender)
    assert result.executed == 3 and result.recovered == 0
    assert not {p["id"] for p in sender.payloads} & set(held)
    assert all(by_id(ctx)[fid]["status"] == "processing" for fid in held)


def test_an_expired_lease_is_recovered_and_delivered(make_ctx: MakeCtx, clock: FakeClock
                                                     ) -> None:
    ctx = make_ctx(FOLLOWUP_LEASE_SECONDS=600)
    add_due(ctx, 3)
    held = claim_as_dead_pass(ctx, 2)
    clock.advance(seconds=601)
    sender = MemorySender()
    result = run_due(ctx, sender=sender)
    assert result.recovered == 2 and result.executed == 3
    rows = by_id(ctx)
    for fid in held:
        assert rows[fid]["status"] == "executed"
        assert rows[fid]["retry_count"] == 1  # the lost attempt counts
        assert "lease expired" in rows[fid]["error_message"]
    assert {p["attempt"] for p in sender.payloads if p["id"] in held} == {2}


def test_a_poison_message_is_failed_after_max_retries_plus_two_crashes(
        make_ctx: MakeCtx, clock: FakeClock) -> None:
    ctx = make_ctx(FOLLOWUP_LEASE_SECONDS=60, FOLLOWUP_MAX_RETRIES=1)
    [fid] = add_due(ctx, 1)
    for crash in range(3):  # three passes die holding it
        assert claim_as_dead_pass(ctx, 1) == [fid]
        clock.advance(seconds=61)
        if crash < 2:
            with ctx.db.transaction() as conn:
                assert store.recover_expired(conn, now=ctx.now(), max_retries=1) == (1, 0)
    result = run_due(ctx, sender=MemorySender())
    row = by_id(ctx)[fid]
    assert result.failed == 1 and result.executed == 0
    assert row["status"] == "failed" and row["retry_count"] == 3
    assert row["last_attempt_at"] == ctx.now()


def test_a_crash_on_the_last_allowed_attempt_is_still_delivered_again(
        make_ctx: MakeCtx, clock: FakeClock) -> None:
    """At-least-once: with no retries allowed, a pass that dies mid-send does not turn the
    follow-up into a failure nobody received."""
    ctx = make_ctx(FOLLOWUP_LEASE_SECONDS=60, FOLLOWUP_MAX_RETRIES=0)
    [fid] = add_due(ctx, 1)
    assert claim_as_dead_pass(ctx, 1) == [fid]
    clock.advance(seconds=61)
    sender = MemorySender()
    result = run_due(ctx, sender=sender)
    assert (result.recovered, result.executed, result.failed) == (1, 1, 0)
    assert [p["id"] for p in sender.payloads] == [fid]
    assert by_id(ctx)[fid]["status"] == "executed"


def test_a_stale_pass_cannot_overwrite(ctx: Context) -> None:
    [fid] = add_due(ctx, 1)
    claim_as_dead_pass(ctx, 1)
    with ctx.db.transaction() as conn:
        store.mark_executed(conn, "another-pass", [(fid, ctx.now())])
        store.mark_attempt_failed(conn, "another-pass", [store.Failure(
            fid, "failed", 9, "x", ctx.now(), ctx.now())])
        assert store.release(conn, [fid], "another-pass") == 0
    row = by_id(ctx)[fid]
    assert row["status"] == "processing" and row["locked_by"] == "dead-pass"
    assert row["retry_count"] == 0


def test_a_send_the_lease_would_not_cover_is_never_started(make_ctx: MakeCtx) -> None:
    """The engine never starts a send whose deadline would end within `margin` of the
    lease of what it holds (only possible here with a sender deadline longer than the
    lease; build_sender caps it at a quarter). Everything goes back untouched."""
    ctx = make_ctx(FOLLOWUP_LEASE_SECONDS=10)
    ids = add_due(ctx, 3)
    sender = OneByOne(deadline=9.5)
    result = run_due(ctx, sender=sender)
    assert result.executed == 0 and result.released == result.claimed >= 1
    assert result.stopped == "lease" and not sender.payloads
    rows = by_id(ctx)
    for fid in ids:
        assert rows[fid]["status"] == "pending" and rows[fid]["retry_count"] == 0
        assert rows[fid]["locked_by"] is None and rows[fid]["last_attempt_at"] is None


def test_claims_follow_the_send_rate(ctx: Context) -> None:
    """A one-by-one sender's first claim is one per worker (no rate known yet); later
    claims are about a second of work, never more than --batch-size."""
    add_due(ctx, 30)
    claims: list[int] = []
    original = store.claim_due

    def spy(*args: Any, **kw: Any) -> list[Any]:
        claims.append(kw["limit"])
        return original(*args, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(store, "claim_due", spy)
    try:
        result = run_due(ctx, PassOptions(batch_size=8, concurrency=2),
                         sender=OneByOne(delay=0.01))
    finally:
        mp.undo()
    assert result.executed == 30
    assert claims[0] == 2 and all(2 <= n <= 8 for n in claims)


def test_outcomes_are_written_back_while_the_pass_still_sends(ctx: Context) -> None:
    """Write-back per send (issue 8): an outcome is in the table within about a second of
    its send, not at the end of the batch or the pass."""
    ids = add_due(ctx, 8)
    seen: dict[str, str] = {}

    class Watching(OneByOne):
        def send(self, payload: dict[str, Any], deadline_at: float) -> None:
            if payload["id"] == ids[-1]:
                seen.update({fid: row["status"] for fid, row in by_id(ctx).items()})
            super().send(payload, deadline_at)

    run_due(ctx, PassOptions(batch_size=8), sender=Watching(delay=0.2))
    # 7 sends of 0.2 s before the last one: all but the most recent second are written
    assert sum(seen[fid] == "executed" for fid in ids[:-1]) >= 4


def test_a_stop_request_writes_back_and_releases_the_rest(ctx: Context) -> None:
    from followup_cli.service.delivery import StopRequest

    ids = add_due(ctx, 10)
    stop = StopRequest()
    sender = StopsAfterThree(stop)
    result = run_due(ctx, PassOptions(batch_size=10), sender=sender, stop=stop)
    assert result.stopped == "signal" and result.signal == 15
    assert result.executed == 3 and result.released == result.claimed - 3
    rows = by_id(ctx)
    assert [rows[fid]["status"] for fid in ids].count("executed") == 3
    assert {rows[fid]["status"] for fid in ids} == {"executed", "pending"}
    assert all(rows[fid]["locked_by"] is None for fid in ids)
    assert run_records(ctx)[-1]["status"] == "stopped"


class LoseCommit:
    """Database.statements() whose COMMIT fails once, in the first transaction that ran
    `operation` (a store.delivery function): on PostgreSQL the backend is terminated
    while the transaction is open, so the COMMIT really fails (a restart, a failover);
    on SQLite the commit is replaced by an error."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, operation: str) -> None:
        from followup_cli.db.engine import Database

        self.ran = self.done = False
        real_op, real_statements = getattr(store, operation), Database.statements

        def op(*a: Any, **k: Any) -> Any:
            self.ran = True
            return real_op(*a, **k)

        @contextlib.contextmanager
        def statements(db: Database, **kw: Any) -> Iterator[Any]:
            with real_statements(db, **kw) as sql:
                self.ran = False
                yield sql
                if self.ran and not self.done:
                    self.done = True
                    if sql.is_postgres:
                        kill_backend(sql.dbapi_conn.get_backend_pid())
                    else:
                        raise DatabaseError("simulated: COMMIT failed")

        monkeypatch.setattr(store, operation, op)
        monkeypatch.setattr(Database, "statements", statements)


def kill_backend(pid: int) -> None:
    import psycopg2

    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    admin.close()


def test_a_claim_whose_commit_fails_is_not_held(make_ctx: MakeCtx,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim's transaction is lost at COMMIT: its rows are pending again, and the
    retried claim takes them again; the pass must send each once (it queued them twice,
    sent one row twice and counted 4 claims for 3 rows)."""
    ctx = make_ctx(FOLLOWUP_LEASE_SECONDS=60)
    ids = add_due(ctx, 3)
    lost = LoseCommit(monkeypatch, "claim_due")
    sender = OneByOne()
    result = run_due(ctx, PassOptions(), sender=sender)
    assert lost.done
    assert sorted(p["id"] for p in sender.payloads) == ids  # each once
    assert result.claimed == result.executed == 3
    assert {r["status"] for r in by_id(ctx).values()} == {"executed"}


def test_a_hand_back_whose_commit_fails_is_retried(make_ctx: MakeCtx,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A stopped pass hands its unsent claims back; when that COMMIT is lost, the retry
    must hand them back again (it found an empty queue: the rows stayed leased until the
    lease ran out, and came back as a failed attempt)."""
    from followup_cli.service.delivery import StopRequest

    ctx = make_ctx(FOLLOWUP_LEASE_SECONDS=600)
    ids = add_due(ctx, 10)
    stop = StopRequest()
    lost = LoseCommit(monkeypatch, "release")
    result = run_due(ctx, PassOptions(batch_size=10), sender=StopsAfterThree(stop),
                     stop=stop)
    assert lost.done
    assert result.executed == 3 and result.released == 7
    rows = by_id(ctx)
    assert sorted(r["status"] for r in rows.values()) == ["executed"] * 3 + ["pending"] * 7
    assert all(rows[fid]["locked_by"] is None for fid in ids)


# --- send window, switch, dry run -------------------------------------------------------

@pytest.mark.parametrize(("window", "hour", "open_"), [
    ("09:00-20:00", 12, True), ("09:00-20:00", 8, False), ("09:00-20:00", 20, False),
    ("21:00-02:00", 23, True), ("21:00-02:00", 1, True), ("21:00-02:00", 2, False),
    ("21:00-02:00", 12, False),
])
def test_send_window(make_ctx: MakeCtx, clock: FakeClock, window: str, hour: int,
                     open_: bool) -> None:
    clock.now = clock.now.replace(hour=hour, minute=30 if hour != 20 and hour != 2 else 0)
    ctx = make_ctx(FOLLOWUP_SEND_WINDOW=window)
    ids = add_due(ctx, 3)
    before = by_id(ctx)
    result = run_due(ctx, sender=MemorySender())
    assert result.window_open is open_
    if open_:
        assert result.executed == 3 and result.deferred == 0
    else:
        assert result.claimed == 0 and result.deferred == 3
        assert result.stopped == "window_closed"
        assert by_id(ctx) == before  # untouched: no retry, no error, times as they were
        assert {r["kind"] for r in run_records(ctx)} == {"run-due"}
    assert len(ids) == 3


def test_send_window_is_in_the_scheduler_zone(make_ctx: MakeCtx, clock: FakeClock) -> None:
    clock.now = clock.now.replace(hour=15)  # 15:00 UTC = 07:00 in Los Angeles
    ctx = make_ctx(FOLLOWUP_SEND_WINDOW="09:00-20:00", SCHEDULER_TIMEZONE="America/Los_Angeles")
    add_due(ctx, 1)
    assert run_due(ctx, sender=MemorySender()).deferred == 1
    clock.advance(hours=2)  # 09:00 there
    assert run_due(ctx, sender=MemorySender()).executed == 1


def test_a_signal_during_a_closed_window_pass_is_its_exit_code(make_ctx: MakeCtx,
                                                              clock: FakeClock) -> None:
    from followup_cli.service.delivery import StopRequest

    clock.now = clock.now.replace(hour=22)
    ctx = make_ctx(FOLLOWUP_SEND_WINDOW="09:00-20:00")
    add_due(ctx, 1)
    stop = StopRequest()
    stop(2)
    result = run_due(ctx, sender=MemorySender(), stop=stop)
    assert result.deferred == 1 and (result.stopped, result.signal) == ("signal", 2)


def test_closed_window_leaves_expired_leases_alone(make_ctx: MakeCtx, clock: FakeClock) -> None:
    clock.now = clock.now.replace(hour=22)
    ctx = make_ctx(FOLLOWUP_SEND_WINDOW="09:00-20:00", FOLLOWUP_LEASE_SECONDS=60)
    add_due(ctx, 1)
    [fid] = claim_as_dead_pass(ctx, 1)
    clock.advance(minutes=5)
    result = run_due(ctx, sender=MemorySender())
    assert result.recovered == 0 and by_id(ctx)[fid]["status"] == "processing"


def test_disabled_does_nothing_and_records_no_run(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(SCHEDULER_ENABLED="false")
    add_due(ctx, 2)
    sender = MemorySender()
    result = run_due(ctx, sender=sender)
    assert result.disabled and result.claimed == 0 and not sender.payloads
    assert run_records(ctx) == []
    assert {r["status"] for r in by_id(ctx).values()} == {"pending"}


def test_dry_run_changes_nothing(ctx: Context) -> None:
    ids = add_due(ctx, 4)
    before = by_id(ctx)
    sender = MemorySender()
    result = run_due(ctx, PassOptions(dry_run=True, batch_size=3), sender=sender)
    assert result.due == 4 and [p["id"] for p in result.preview] == ids[:3]
    assert not sender.payloads and by_id(ctx) == before and run_records(ctx) == []


# --- run record -------------------------------------------------------------------------

def test_every_pass_is_recorded_idle_ones_too(ctx: Context, clock: FakeClock) -> None:
    idle = run_due(ctx, sender=MemorySender())
    add_due(ctx, 2)
    busy = run_due(ctx, sender=MemorySender())
    records = run_records(ctx)
    assert [r["id"] for r in records] == [idle.run_id, busy.run_id]
    for record in records:
        assert record["kind"] == "run-due" and record["status"] == "ok"
        assert record["finished_at"] == clock.now and record["host"] and record["pid"]
    assert records[1]["counts"]["executed"] == 2 and records[0]["counts"]["claimed"] == 0
    from followup_cli.store import runs
    with ctx.db.transaction(readonly=True) as conn:
        last = runs.last_finished(conn, "run-due")
    assert last is not None and last["id"] == busy.run_id


# --- options ----------------------------------------------------------------------------

@pytest.mark.parametrize(("kw", "message"), [
    ({"batch_size": 0}, "batch size"), ({"limit": 0}, "limit"),
    ({"concurrency": 65}, "concurrency"), ({"time_budget": -1}, "time budget"),
    ({"time_budget": float("nan")}, "time budget"),
])
def test_bad_options_are_input_errors(ctx: Context, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        run_due(ctx, PassOptions(**kw), sender=MemorySender())

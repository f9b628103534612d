"""One delivery pass (`followup run-due`): give back dead passes' claims, then claim due
follow-ups under a lease, send them, and write each outcome back within about a second.

What holds (DESIGN "Guarantees under faults", README "Guarantees"):
- While this pass lives, no other pass takes what it holds: every send has a total deadline
  (senders.py) well inside the lease, the pass renews the lease of everything it holds
  (its heartbeat) and never starts a send that its lease would not cover. Leases and due
  times are read on the database's clock, so host clocks may disagree.
- Outcomes are written back in small batched transactions at least every FLUSH_SECONDS,
  so a crash re-delivers at most the last second's sends (at-least-once), and every write
  is fenced by `locked_by = this pass`.
- A stop (SIGTERM/SIGINT, the time budget, --limit) stops claiming and starting sends, lets
  the sends in flight finish within their deadline, writes every outcome back and hands the
  unsent claims back to pending at once.
- Claims and lease recovery skip rows locked by another session.

Any number of passes may run at once on any number of hosts.
"""

from __future__ import annotations

import logging
import queue
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from followup_cli.errors import DatabaseError, DecryptError, DeliveryError, InputError
from followup_cli.service.backoff import after_failure
from followup_cli.service.senders import (
    Sender,
    build_sender,
    close_sender,
    is_batch,
)
from followup_cli.settings import Settings
from followup_cli.timeutil import iso, utcnow

if TYPE_CHECKING:
    # Not at run time: importing Context or the store imports SQLAlchemy, which the idle
    # fast path of run_due_for() exists to avoid.
    from concurrent.futures import Future, ThreadPoolExecutor

    from followup_cli.service.context import Context
    from followup_cli.store.delivery import Claimed, Failure
    from followup_cli.store.executor import Sql

log = logging.getLogger("followup.delivery")

RUN_KIND = "run-due"
MAX_CONCURRENCY = 64
MAX_BATCH = 10_000  # one claim's ids fit in SQLite's bound-parameter limit
PROBLEMS_SHOWN = 50  # failed/retried follow-ups listed in a result; counts are always exact
FLUSH_SECONDS = 0.5  # outcomes are written back at least this often (DESIGN: within ~1 s)
CLAIM_SECONDS = 1.0  # a claim takes about this much work, by the measured send rate
DB_RETRY_SECONDS = 15.0  # how long write-back is retried while the database is away
RECOVER_ROUNDS = 100  # lease recovery per pass: at most this many batches of 1,000

Progress = Callable[[int, int | None], None]


@dataclass
class PassOptions:
    batch_size: int = 1000  # the most one claim takes; fewer for slow senders (by rate)
    limit: int | None = None  # max follow-ups this pass
    concurrency: int = 1  # parallel sends (thread pool); claim and write-back stay batched
    time_budget: float = 50.0  # seconds; no claim and no new send after it
    dry_run: bool = False


@dataclass
class PassResult:
    run_id: str | None = None
    claimed: int = 0
    executed: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    recovered: int = 0  # expired leases of dead passes given back (counted as an attempt)
    released: int = 0  # claimed but not sent: handed back to pending untouched
    seconds: float = 0.0
    disabled: bool = False
    dry_run: bool = False
    window_open: bool = True
    # why the pass stopped: drained, limit, time_budget, signal, window_closed, disabled,
    # dry_run
    stopped: str = "drained"
    signal: int | None = None  # the signal that stopped it (exit 128 + signal)
    due: int | None = None  # --dry-run: how many are due now
    preview: list[dict[str, Any]] = field(default_factory=list)  # --dry-run: the first ones
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # log sender, --json
    problems: list[dict[str, Any]] = field(default_factory=list)  # retried or failed ones

    @property
    def counts(self) -> dict[str, Any]:
        return {"claimed": self.claimed, "executed": self.executed, "retried": self.retried,
                "failed": self.failed, "deferred": self.deferred,
                "recovered": self.recovered, "released": self.released,
                "seconds": round(self.seconds, 3)}

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "run_id": self.run_id, **self.counts, "disabled": self.disabled,
            "dry_run": self.dry_run, "window_open": self.window_open, "stopped": self.stopped,
            "signal": self.signal, "problems": self.problems, "deliveries": self.deliveries,
        }
        if self.dry_run:
            doc["due"] = self.due
            doc["preview"] = self.preview
        return doc


class StopRequest:
    """Set from a signal handler (or a test): the pass stops claiming and starting sends,
    lets the sends in flight finish within their deadline, writes every outcome back and
    hands the unsent claims back. A second request stops waiting for sends in flight
    (their claims are then recovered after the lease)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.count = 0

    def __call__(self, signum: int, _frame: Any = None) -> None:
        self.count += 1
        if self.signal is None:
            self.signal = signum

    @property
    def requested(self) -> bool:
        return self.count > 0

    @property
    def hurried(self) -> bool:
        return self.count > 1


def payload(row: Claimed, message: str | None, trigger_data: Any) -> dict[str, Any]:
    """What every channel receives. The id doubles as idempotency key: after a crash a
    follow-up may arrive twice, and the receiver can tell."""
    return {
        "id": row.id,
        "idempotency_key": row.id,
        "user_id": row.user_id,
        "conversation_id": row.conversation_id,
        "trigger_type": row.trigger_type,
        "template_id": row.template_id,
        "message": message,
        "scheduled_at": iso(row.scheduled_at),
        "trigger_data": trigger_data,
        "attempt": int(row.retry_count) + 1,
        "created_at": iso(row.created_at),
    }


def window_open(settings: Settings, now: datetime) -> bool:
    window = settings.send_window
    return window is None or window.contains(now.astimezone(settings.timezone).time())


def _validate(options: PassOptions) -> None:
    """The CLI types and bounds these already; callers of the service get the same rules."""
    if not 1 <= options.batch_size <= MAX_BATCH:
        raise InputError(f"batch size: must be between 1 and {MAX_BATCH}")
    if options.limit is not None and options.limit < 1:
        raise InputError("limit: must be at least 1")
    if not 1 <= options.concurrency <= MAX_CONCURRENCY:
        raise InputError(f"concurrency: must be between 1 and {MAX_CONCURRENCY}")
    if not options.time_budget > 0:
        raise InputError("time budget: must be more than 0 seconds")


def run_due_for(settings: Settings, options: PassOptions | None = None, *,
                progress: Progress | None = None, stop: StopRequest | None = None,
                log_stream: TextIO | None = None) -> PassResult:
    """What cron runs every minute: when nothing is due and no lease has expired, the pass
    is decided and recorded on the raw driver without importing SQLAlchemy (most passes are
    idle, and that import is most of their cost); otherwise the full pass runs.
    `log_stream` is where the log sender prints deliveries (None: into the result)."""
    settings.require_sender()  # exit 2 naming FOLLOWUP_SENDER, before anything is claimed
    options = options or PassOptions()
    _validate(options)
    spare: list[Any] = []  # the probe's connection, when it found work
    if settings.enabled and not options.dry_run:
        idle = _idle_pass(settings, spare.append)
        if idle is not None:
            return _signalled(idle, stop)
    from followup_cli.service.context import Context

    ctx = Context(settings, read_only=options.dry_run)  # a dry run creates no database
    if spare:
        ctx.db.adopt(spare[0])  # no second connect on the cron path
    try:
        sender = None
        if settings.enabled and not options.dry_run:
            sender = build_sender(settings, log_stream=log_stream)
        try:
            return run_due(ctx, options, sender=sender, progress=progress, stop=stop)
        finally:
            if sender is not None:
                close_sender(sender)
    finally:
        ctx.close()


def _signalled(result: PassResult, stop: StopRequest | None) -> PassResult:
    """A pass that ended without work still reports a signal that arrived meanwhile: the
    exit code (143, 130) says it was stopped, as for any other pass."""
    if stop is not None and stop.requested:
        result.stopped, result.signal = "signal", stop.signal
    return result


def _idle_pass(settings: Settings, handover: Callable[[Any], None]) -> PassResult | None:
    from followup_cli.db import CONNECT_TIMEOUT_S, STATEMENT_TIMEOUT_MS
    from followup_cli.db.compat import head_revision
    from followup_cli.store.idle_probe import record_if_idle

    started = time.monotonic()
    now = utcnow()
    is_open = window_open(settings, now)
    result = PassResult(run_id=uuid.uuid4().hex, window_open=is_open,
                        stopped="drained" if is_open else "window_closed")
    recorded = record_if_idle(
        settings.database_url, revision=head_revision(), run_id=str(result.run_id),
        counts=result.counts, statement_timeout_ms=STATEMENT_TIMEOUT_MS,
        connect_timeout_s=CONNECT_TIMEOUT_S, handover=handover)
    if not recorded:
        return None
    result.seconds = time.monotonic() - started
    log.info("run-due %s: idle", result.run_id)
    return result


def run_due(ctx: Context, options: PassOptions | None = None, *,
            sender: Sender | None = None, progress: Progress | None = None,
            stop: StopRequest | None = None) -> PassResult:
    """One delivery pass. Never raises for a failed delivery (it is recorded on its
    follow-up); raises DatabaseError when the database fails for longer than
    DB_RETRY_SECONDS (what was not written back stays leased and is delivered again after
    the lease)."""
    if sender is None:  # the demo and tests pass their own sender
        ctx.settings.require_sender()
    options = options or PassOptions()
    _validate(options)
    started = time.monotonic()
    if not ctx.settings.enabled:
        log.info("scheduler disabled (SCHEDULER_ENABLED=false): nothing done")
        return PassResult(disabled=True, stopped="disabled")
    now = ctx.now()
    is_open = window_open(ctx.settings, now)
    if options.dry_run:
        return _dry_run(ctx, options, now, is_open, started)
    own = sender is None
    if sender is None:
        sender = build_sender(ctx.settings)
    try:
        return _Pass(ctx, options, sender, now, is_open, started, progress,
                     stop or StopRequest()).run()
    finally:
        if own:
            close_sender(sender)


def _dry_run(ctx: Context, options: PassOptions, now: datetime, is_open: bool,
             started: float) -> PassResult:
    from followup_cli.store import delivery as store

    shown = min(options.limit or options.batch_size, options.batch_size, 100)
    with ctx.db.statements(readonly=True) as conn:
        due = store.count_due(conn, due_before=now)
        rows = store.list_due(conn, due_before=now, limit=shown)
    preview = [{"id": r.id, "user_id": r.user_id, "trigger_type": r.trigger_type,
                "template_id": r.template_id, "scheduled_at": iso(r.scheduled_at),
                "next_attempt_at": iso(r.next_attempt_at), "retry_count": r.retry_count}
               for r in rows]
    return PassResult(dry_run=True, due=due, preview=preview, window_open=is_open,
                      deferred=0 if is_open else due, stopped="dry_run",
                      seconds=time.monotonic() - started)


@dataclass
class _Outcome:
    row: Claimed
    at: datetime
    error: DeliveryError | None = None


class _Pass:
    """The state of one pass; `run()` is the whole of it."""

    def __init__(self, ctx: Context, options: PassOptions, sender: Sender, now: datetime,
                 is_open: bool, started: float, progress: Progress | None,
                 stop: StopRequest) -> None:
        self.ctx = ctx
        self.options = options
        self.sender = sender
        self.batched = is_batch(sender)
        self.progress = progress
        self.stop = stop
        # Claim only what was due when the pass began: a follow-up this pass retries (its
        # next attempt moved past this instant) is never attempted twice by it.
        self.due_before = now
        self.started = started
        self.result = PassResult(run_id=uuid.uuid4().hex, window_open=is_open)
        self.run_id = str(self.result.run_id)
        self.lease = float(ctx.settings.lease_seconds)
        self.deadline = float(sender.deadline)
        # No send starts unless its deadline ends this long before the lease does.
        self.margin = min(5.0, self.lease * 0.1)
        self.queue: deque[Claimed] = deque()  # claimed, not yet sent
        self.in_flight: dict[Future[_Outcome], Claimed] = {}
        # Sends report here as they finish: collecting one costs the same with 64 in
        # flight as with one (concurrent.futures.wait would lock and unlock every future
        # in flight on each call, once per finished send).
        self.finished: queue.SimpleQueue[Future[_Outcome]] = queue.SimpleQueue()
        self.outcomes: list[_Outcome] = []  # sent, not yet written back
        self.valid_until = 0.0  # monotonic instant the oldest held claim's lease ends
        self.renewed_at = 0.0
        self.beat_at = started
        self.flushed_at = started
        self.drained = False
        self.total: int | None = None
        self.sent = 0
        self.sending_since: float | None = None
        self.db_gave_up = False

    # --- the pass ---------------------------------------------------------------------

    def run(self) -> PassResult:
        """A DatabaseError (after DB_RETRY_SECONDS of retries) leaves the run unfinished
        (health must not count it) and what it holds leased: delivered again after it."""
        from followup_cli.service import runs as run_records
        from followup_cli.store import delivery as store

        ctx, result = self.ctx, self.result
        with ctx.db.statements() as conn:
            run_records.begin(conn, run_id=self.run_id, kind=RUN_KIND, now=self.due_before)
            if not result.window_open:
                # Outside the send window nothing is touched: not even expired leases.
                result.deferred = store.count_due(conn, due_before=self.due_before)
                result.stopped = "window_closed"
                self._finish(conn)
                log.info("outside the send window %s: %d due deferred",
                         ctx.settings.send_window, result.deferred)
                return _signalled(result, self.stop)
        self._recover()
        if self.progress is not None:
            with ctx.db.statements(readonly=True) as conn:
                self.total = store.count_due(conn, due_before=self.due_before)
        self._loop()
        with ctx.db.statements() as conn:
            self._finish(conn)
        log.info("run-due %s: %s", self.run_id, result.counts)
        return result

    def _recover(self) -> None:
        from followup_cli.store import delivery as store

        for _ in range(RECOVER_ROUNDS):
            with self.ctx.db.statements() as conn:
                # At the pass's own start: what it gives back is due for this very pass.
                requeued, lost = store.recover_expired(
                    conn, now=self.due_before, max_retries=self.ctx.settings.max_retries)
            self.result.recovered += requeued + lost
            self.result.failed += lost
            if requeued or lost:
                log.warning("recovered %d expired leases (%d failed for good)",
                            requeued + lost, lost)
            if requeued + lost < store.RECOVER_BATCH:
                return

    def _loop(self) -> None:
        concurrency = self.options.concurrency
        pool: ThreadPoolExecutor | None = None
        # One follow-up at a time still goes to a thread, so that this one can write back
        # what is sent while a slow send is in flight (within FLUSH_SECONDS, not after it).
        if concurrency > 1 or not self.batched:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(concurrency, thread_name_prefix="send")
        try:
            while True:
                if self._may_claim() and len(self.queue) < concurrency:
                    self._sync(claim=True)
                if not self._may_start():
                    break
                if pool is None:
                    if self.queue:
                        self._send_inline()
                else:
                    while self.queue and len(self.in_flight) < concurrency:
                        row = self.queue.popleft()
                        future = pool.submit(self._send_one, row)
                        self.in_flight[future] = row
                        future.add_done_callback(self.finished.put)
                    self._collect(wait=self._next_sync_in())
                if not self.queue and not self.in_flight and \
                        (self.drained or not self._may_claim()):
                    break
                if self._sync_due():
                    self._sync(claim=False)
        finally:
            self._wind_down(pool)

    def _wind_down(self, pool: ThreadPoolExecutor | None) -> None:
        """Let the sends in flight finish (each within its deadline) unless hurried, write
        every outcome back and hand the unsent claims back."""
        if pool is not None:
            while self.in_flight and not self.stop.hurried:
                self._collect(wait=FLUSH_SECONDS)
                if self.outcomes and self._sync_due() and not self.db_gave_up:
                    self._sync(claim=False)
            self._collect(wait=0)
            pool.shutdown(wait=False, cancel_futures=True)
        if self.stop.requested:
            self.result.stopped = "signal"
            self.result.signal = self.stop.signal
        if self.outcomes or self.queue:
            self._sync(claim=False, release=True)

    # --- deciding ---------------------------------------------------------------------

    def _over_budget(self) -> bool:
        if time.monotonic() - self.started < self.options.time_budget:
            return False
        self.result.stopped = "time_budget"
        return True

    def _may_claim(self) -> bool:
        options = self.options
        if self.stop.requested or self.drained or self._over_budget():
            return False
        if options.limit is not None and self.result.claimed >= options.limit:
            self.result.stopped = "limit"
            return False
        return True

    def _may_start(self) -> bool:
        """Whether a send may start now: not stopping, inside the time budget, and its
        deadline ends well before the lease of what this pass holds."""
        if self.stop.requested or self._over_budget():
            return False
        if self.queue and time.monotonic() + self.deadline + self.margin > self.valid_until:
            # Only when renewals could not keep up: hand the rest back.
            log.warning("the lease would not cover another send: stopping")
            self.result.stopped = "lease"
            return False
        return True

    def _claim_size(self) -> int:
        """About CLAIM_SECONDS of work at the measured send rate (local senders: a whole
        batch), at least one per worker, at most --batch-size and what --limit leaves."""
        options = self.options
        if self.batched:
            size = options.batch_size
        elif self.sent and self.sending_since is not None:
            rate = self.sent / max(time.monotonic() - self.sending_since, 1e-3)
            size = int(rate * CLAIM_SECONDS)
        else:
            size = options.concurrency
        size = max(options.concurrency, min(options.batch_size, size))
        if options.limit is not None:
            size = min(size, options.limit - self.result.claimed)
        return max(1, size)

    def _next_sync_in(self) -> float:
        """How long the pass's thread may wait for a send to finish: until the outcomes
        waiting are due to be written back, or, with none waiting, FLUSH_SECONDS (a stop
        request or a renewal is then noticed within that). Never 0 with nothing to write:
        the loop would spin while a slow send is in flight."""
        if not self.outcomes:
            return FLUSH_SECONDS
        return max(0.0, FLUSH_SECONDS - (time.monotonic() - self.flushed_at))

    def _sync_due(self) -> bool:
        now = time.monotonic()
        if self.outcomes and now - self.flushed_at >= FLUSH_SECONDS:
            return True
        return self._renewal_due(now)

    def _renewal_due(self, now: float) -> bool:
        held = bool(self.queue or self.in_flight)
        return held and now - self.renewed_at >= self.lease / 4

    # --- sending ------------------------------------------------------------------------

    def _reveal(self, row: Claimed) -> dict[str, Any]:
        """The payload, with the stored message and custom message opened. A row that
        cannot be opened fails alone, never garbage sent to a user: at once when no listed
        key opens it (add the key it names, then `followup retry`), as a retry when no key
        is set at all (a setting that is missing, likely to be put back)."""
        cipher = self.ctx.cipher
        try:
            message = cipher.open(row.message_content)
            data = (cipher.open_trigger_data(row.trigger_data)
                    if isinstance(row.trigger_data, dict) else row.trigger_data)
        except DecryptError as error:
            raise DeliveryError(f"cannot open the stored message: {error}",
                                transient=error.no_key) from None
        return payload(row, message, data)

    def _send_inline(self) -> None:
        """A batch sender at concurrency 1 gets everything queued in one call (one write
        per batch)."""
        if self.sending_since is None:
            self.sending_since = time.monotonic()
        rows = list(self.queue)
        self.queue.clear()
        payloads: list[dict[str, Any]] = []
        sendable: list[Claimed] = []
        for row in rows:
            try:
                payloads.append(self._reveal(row))
                sendable.append(row)
            except DeliveryError as error:
                self.outcomes.append(_Outcome(row, self.ctx.now(), error))
        errors: list[DeliveryError | None] = []
        if payloads:
            try:
                errors = self.sender.send_many(payloads)  # type: ignore[attr-defined]
            except Exception as error:  # a sender bug must not abort the pass
                log.error("sender raised %s for a batch of %d", type(error).__name__,
                          len(payloads))
                errors = [DeliveryError(f"sender error: {type(error).__name__}",
                                        transient=True)] * len(payloads)
        at = self.ctx.now()  # one timestamp for the batch: it was one write
        self.outcomes.extend(_Outcome(row, at, error)
                             for row, error in zip(sendable, errors, strict=True))
        self.sent += len(rows)

    def _send_one(self, row: Claimed) -> _Outcome:
        began = time.monotonic()
        try:
            body = self._reveal(row)
            self.sender.send(body, began + self.deadline)
        except DeliveryError as error:
            return _Outcome(row, self.ctx.now(), error)
        except Exception as error:  # a sender bug must not abort the pass
            # The type only: an exception's text might quote the message.
            log.error("sender raised %s for follow-up %s", type(error).__name__, row.id)
            return _Outcome(row, self.ctx.now(), DeliveryError(
                f"sender error: {type(error).__name__}", transient=True))
        return _Outcome(row, self.ctx.now())

    def _collect(self, wait: float) -> None:
        """Take the outcomes of the sends that have finished, waiting up to `wait` seconds
        for the first when none has."""
        if not self.in_flight:
            return
        if self.sending_since is None:
            self.sending_since = time.monotonic()
        finished = self.finished
        try:
            future = finished.get(timeout=wait) if wait > 0 else finished.get_nowait()
        except queue.Empty:
            return
        while True:
            if self.in_flight.pop(future, None) is not None:
                self.outcomes.append(future.result())
                self.sent += 1
            try:
                future = finished.get_nowait()
            except queue.Empty:
                return

    # --- the database -------------------------------------------------------------------

    def _sync(self, *, claim: bool, release: bool = False) -> None:
        """One transaction: write outcomes back, renew the lease of what is held, touch
        the run record, hand claims back or claim more. While the database is away (a
        restart, a failover) it is retried with backoff for up to DB_RETRY_SECONDS:
        outcomes already sent are worth the wait; then the DatabaseError goes up."""
        delay, waited = 0.25, 0.0
        while True:
            try:
                self._sync_once(claim=claim, release=release)
                return
            except DatabaseError as error:
                if self.db_gave_up or waited >= DB_RETRY_SECONDS:
                    self.db_gave_up = True
                    raise
                # INFO: a restart ridden out is no news; one that is not ends in one error line
                log.info("database unavailable (%s): retrying in %.2g s", error, delay)
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 4.0)

    def _sync_once(self, *, claim: bool, release: bool) -> None:
        """The transaction of `_sync`. What it did changes the pass's state only once it
        has committed: a claim, a hand-back or a renewal whose COMMIT fails never
        happened (the rows are pending again, or still held as before), and the retry
        must find the pass as it was, or it would queue the same rows twice."""
        from followup_cli.store import delivery as store
        from followup_cli.store import runs

        ctx = self.ctx
        now_mono = time.monotonic()
        renew = not release and self._renewal_due(now_mono)
        beat = now_mono - self.beat_at >= 30.0
        unsent = [row.id for row in self.queue] if release else []
        size = self._claim_size() if claim else 0
        released, claimed_mono = 0, now_mono
        claimed: list[Claimed] = []
        with ctx.db.statements() as conn:
            written, executed, failures = self._write_back(conn)
            if unsent:
                released = store.release(conn, unsent, self.run_id)
            if renew:
                store.renew(conn, self.run_id, ctx.now() + timedelta(seconds=self.lease))
            if beat:
                runs.heartbeat(conn, self.run_id, ctx.now())
            if claim:
                # Taken before the claim, so the lease's end errs early, never late.
                claimed_mono = time.monotonic()
                claimed = store.claim_due(
                    conn, due_before=self.due_before, limit=size, run_id=self.run_id,
                    locked_until=ctx.now() + timedelta(seconds=self.lease))
        # Committed: only now do the outcomes count as written, the rest as done.
        self.outcomes = self.outcomes[written:]
        self._count(executed, failures)
        self.flushed_at = now_mono
        if renew:
            self.renewed_at, self.valid_until = now_mono, now_mono + self.lease
        if beat:
            self.beat_at = now_mono
        if unsent:
            self.result.released += released
            log.info("handed %d claimed follow-ups back to pending", len(unsent))
            self.queue.clear()
        if claim:
            self._took(claimed, size, claimed_mono)
        if self.progress is not None:
            r = self.result
            self.progress(r.executed + r.retried + r.failed, self.total)

    def _took(self, rows: list[Claimed], size: int, claimed_mono: float) -> None:
        """Hold the rows a committed claim took."""
        if not (self.queue or self.in_flight):
            self.valid_until = claimed_mono + self.lease
            self.renewed_at = claimed_mono
        self.queue.extend(rows)
        self.result.claimed += len(rows)
        if len(rows) < size:
            self.drained = True

    def _write_back(self, conn: Sql) -> tuple[int, list[tuple[str, datetime]], list[Failure]]:
        """Write the pending outcomes; returns how many, and what was written, which the
        caller counts once the transaction has committed."""
        from followup_cli.store import delivery as store

        outcomes = list(self.outcomes)
        if not outcomes:
            return 0, [], []
        max_retries = self.ctx.settings.max_retries
        executed: list[tuple[str, datetime]] = []
        failures: list[Failure] = []
        for outcome in outcomes:
            row = outcome.row
            if outcome.error is None:
                executed.append((row.id, outcome.at))
                continue
            error = outcome.error
            state = after_failure(
                retry_count=int(row.retry_count), max_retries=max_retries,
                transient=error.transient, retry_after=error.retry_after, now=outcome.at,
                next_attempt_at=row.next_attempt_at)
            failures.append(store.Failure(row.id, state.status, state.retry_count, str(error),
                                          state.next_attempt_at, outcome.at))
        store.mark_executed(conn, self.run_id, executed)
        store.mark_attempt_failed(conn, self.run_id, failures)
        return len(outcomes), executed, failures

    def _count(self, executed: list[tuple[str, datetime]], failures: list[Failure]) -> None:
        result = self.result
        result.executed += len(executed)
        for item in failures:
            if item.status == "failed":
                result.failed += 1
                # INFO: the pass report prints one line per such follow-up already
                log.info("follow-up %s failed for good after %d attempts",
                         item.id, item.retry_count)
            else:
                result.retried += 1
                log.info("follow-up %s: attempt %d failed, next at %s",
                         item.id, item.retry_count, iso(item.next_attempt_at))
            if len(result.problems) < PROBLEMS_SHOWN:
                result.problems.append({
                    "id": item.id, "status": item.status,
                    "retry_count": item.retry_count, "error": item.error,
                    "next_attempt_at": iso(item.next_attempt_at)
                    if item.status == "pending" else None})
        collected = getattr(self.sender, "payloads", None)
        if isinstance(collected, list) and getattr(self.sender, "stream", True) is None:
            done = {fid for fid, _ in executed}
            result.deliveries.extend(p for p in collected if p["id"] in done)
            collected[:] = [p for p in collected if p["id"] not in done]

    # --- the run record -----------------------------------------------------------------

    def _finish(self, conn: Sql) -> None:
        from followup_cli.store import runs

        self.result.seconds = time.monotonic() - self.started
        runs.finish(conn, run_id=self.run_id, finished_at=self.ctx.now(),
                    status="stopped" if self.stop.requested else "ok",
                    counts=self.result.counts)

"""One delivery pass (`followup run-due`): recover dead passes' claims, claim due follow-ups
in batches under a lease, send them, write the outcomes back in batches.

Safe in any number at once: PostgreSQL's FOR UPDATE SKIP LOCKED (or SQLite's immediate
transactions) gives each follow-up to one pass; the lease gives it back if that pass dies;
every write-back is fenced by `locked_by = this pass`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from followup_cli.errors import DeliveryError, InputError
from followup_cli.service.backoff import after_failure
from followup_cli.service.senders import Sender, build_sender, close_sender, send_timeout
from followup_cli.settings import Settings, parse_number
from followup_cli.timeutil import iso, utcnow

if TYPE_CHECKING:
    # Not at run time: importing Context imports SQLAlchemy, which the idle fast path of
    # run_due_for() exists to avoid.
    from concurrent.futures import ThreadPoolExecutor

    from followup_cli.service.context import Context

log = logging.getLogger("followup.delivery")

RUN_KIND = "run-due"
MAX_CONCURRENCY = 64
MAX_BATCH = 10_000  # one claim's ids fit in SQLite's bound-parameter limit
PROBLEMS_SHOWN = 50  # failed/retried follow-ups listed in a result; counts are always exact


@dataclass
class PassOptions:
    batch_size: int = 100
    limit: int | None = None  # max follow-ups this pass
    concurrency: int = 1  # parallel sends (thread pool); claim and write-back stay batched
    time_budget: float = 50.0  # seconds; stop claiming after it, finish what is held
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
    released: int = 0  # claimed but not sent in time: handed back to pending untouched
    seconds: float = 0.0
    disabled: bool = False
    dry_run: bool = False
    window_open: bool = True
    # why the pass stopped: drained, limit, time_budget, lease, window_closed, disabled,
    # dry_run
    stopped: str = "drained"
    due: int | None = None  # --dry-run: how many are due now
    preview: list[dict[str, Any]] = field(default_factory=list)  # --dry-run: the first ones
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # log sender payloads
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
            "problems": self.problems, "deliveries": self.deliveries,
        }
        if self.dry_run:
            doc["due"] = self.due
            doc["preview"] = self.preview
        return doc


def payload(row: dict[str, Any]) -> dict[str, Any]:
    """What every channel receives. The id doubles as idempotency key: after a crash a
    follow-up may arrive twice, and the receiver can tell."""
    return {
        "id": row["id"],
        "idempotency_key": row["id"],
        "user_id": row["user_id"],
        "conversation_id": row["conversation_id"],
        "trigger_type": row["trigger_type"],
        "template_id": row["template_id"],
        "message": row["message_content"],
        "scheduled_at": iso(row["scheduled_at"]),
        "trigger_data": row["trigger_data"],
        "attempt": int(row["retry_count"]) + 1,
        "created_at": iso(row["created_at"]),
    }


def window_open(settings: Settings, now: datetime) -> bool:
    window = settings.send_window
    return window is None or window.contains(now.astimezone(settings.timezone).time())


def pass_options(*, batch_size: str | None = None, limit: str | None = None,
                 concurrency: str | None = None, time_budget: str | None = None,
                 dry_run: bool = False) -> PassOptions:
    """PassOptions from command-line text; a bad value is an InputError naming its option."""
    defaults = PassOptions()

    def pick(name: str, raw: str | None, default: float, *, integer: bool) -> float:
        if raw is None or not raw.strip():
            return default
        return parse_number(name, raw, integer=integer)

    options = PassOptions(
        batch_size=int(pick("--batch-size", batch_size, defaults.batch_size, integer=True)),
        limit=None if limit is None else int(pick("--limit", limit, 0, integer=True)),
        concurrency=int(pick("--concurrency", concurrency, defaults.concurrency,
                             integer=True)),
        time_budget=pick("--time-budget", time_budget, defaults.time_budget, integer=False),
        dry_run=dry_run,
    )
    _validate(options)
    return options


def _validate(options: PassOptions) -> None:
    if not 1 <= options.batch_size <= MAX_BATCH:
        raise InputError(f"--batch-size: must be between 1 and {MAX_BATCH}")
    if options.limit is not None and options.limit < 1:
        raise InputError("--limit: must be at least 1")
    if not 1 <= options.concurrency <= MAX_CONCURRENCY:
        raise InputError(f"--concurrency: must be between 1 and {MAX_CONCURRENCY}")
    if not options.time_budget > 0:
        raise InputError("--time-budget: must be more than 0 seconds")


def run_due_for(settings: Settings, options: PassOptions | None = None) -> PassResult:
    """What cron runs every minute: when nothing is due and no lease has expired, the pass
    is decided and recorded on the raw driver without importing SQLAlchemy (most passes are
    idle, and that import is most of their cost); otherwise the full pass runs."""
    settings.require_sender()  # exit 2 naming FOLLOWUP_SENDER, before anything is claimed
    options = options or PassOptions()
    _validate(options)
    if settings.enabled and not options.dry_run:
        idle = _idle_pass(settings)
        if idle is not None:
            return idle
    from followup_cli.service.context import Context

    ctx = Context(settings)
    try:
        return run_due(ctx, options)
    finally:
        ctx.close()


def _idle_pass(settings: Settings) -> PassResult | None:
    from followup_cli.db import (
        CONNECT_TIMEOUT_S,
        SCHEMA_REVISION,
        STATEMENT_TIMEOUT_MS,
    )
    from followup_cli.store.idle_probe import record_if_idle

    started = time.monotonic()
    now = utcnow()
    is_open = window_open(settings, now)
    result = PassResult(run_id=uuid.uuid4().hex, window_open=is_open,
                        stopped="drained" if is_open else "window_closed")
    result.seconds = time.monotonic() - started
    recorded = record_if_idle(
        settings.database_url, revision=SCHEMA_REVISION, run_id=str(result.run_id),
        host=socket.gethostname(), pid=os.getpid(), started_at=now, finished_at=utcnow(),
        counts=result.counts, statement_timeout_ms=STATEMENT_TIMEOUT_MS,
        connect_timeout_s=CONNECT_TIMEOUT_S)
    if not recorded:
        return None
    result.seconds = time.monotonic() - started
    log.info("run-due %s: idle", result.run_id)
    return result


def run_due(ctx: Context, options: PassOptions | None = None, *,
            sender: Sender | None = None) -> PassResult:
    """One delivery pass. Never raises for a failed delivery (it is recorded on its
    follow-up); raises DatabaseError when the database fails (what was not written back
    stays leased and is delivered again after the lease)."""
    if sender is None:  # demo passes its own sender
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
    chosen = build_sender(ctx.settings) if sender is None else sender
    try:
        return _Pass(ctx, options, chosen, now, is_open, started).run()
    finally:
        if own:
            close_sender(chosen)


def _dry_run(ctx: Context, options: PassOptions, now: datetime, is_open: bool,
             started: float) -> PassResult:
    from followup_cli.store import delivery as store

    shown = min(options.limit or options.batch_size, options.batch_size)
    with ctx.db.transaction(readonly=True) as conn:
        due = store.count_due(conn, due_before=now)
        rows = store.list_due(conn, due_before=now, limit=shown)
    preview = [{"id": r["id"], "user_id": r["user_id"], "trigger_type": r["trigger_type"],
                "template_id": r["template_id"], "scheduled_at": iso(r["scheduled_at"]),
                "next_attempt_at": iso(r["next_attempt_at"]), "retry_count": r["retry_count"]}
               for r in rows]
    return PassResult(dry_run=True, due=due, preview=preview, window_open=is_open,
                      deferred=0 if is_open else due, stopped="dry_run",
                      seconds=time.monotonic() - started)


@dataclass
class _Outcome:
    row: dict[str, Any]
    sent: bool  # False: released untouched (its lease was too close to run out)
    at: datetime | None = None
    error: DeliveryError | None = None


class _Pass:
    """The state of one pass; `run()` is the whole of it."""

    def __init__(self, ctx: Context, options: PassOptions, sender: Sender, now: datetime,
                 is_open: bool, started: float) -> None:
        self.ctx = ctx
        self.options = options
        self.sender = sender
        # Claim only what was due when the pass began: a follow-up this pass retries (its
        # next attempt moved past this instant) is never attempted twice by it.
        self.due_before = now
        self.started = started
        self.result = PassResult(run_id=uuid.uuid4().hex, window_open=is_open)
        lease = float(ctx.settings.lease_seconds)
        self.lease = lease
        self.timeout = send_timeout(sender)
        self.margin = max(1.0, lease * 0.1)
        # How many one claim may take so that all of them can be sent inside the lease.
        fit = int((lease - self.margin) // self.timeout) * options.concurrency
        self.batch_cap = max(1, min(options.batch_size, fit))
        self.claimed_at = started

    # --- the pass ---------------------------------------------------------------------

    def run(self) -> PassResult:
        from followup_cli.store import delivery as store
        from followup_cli.store import runs

        ctx, result = self.ctx, self.result
        run_id = str(result.run_id)
        with ctx.db.transaction() as conn:
            runs.start(conn, run_id=run_id, kind=RUN_KIND, host=socket.gethostname(),
                       pid=os.getpid(), started_at=self.due_before)
            if not result.window_open:
                # Outside the send window nothing is touched: not even expired leases.
                result.deferred = store.count_due(conn, due_before=self.due_before)
                result.stopped = "window_closed"
                self._finish(conn)
                log.info("outside the send window %s: %d due deferred",
                         ctx.settings.send_window, result.deferred)
                return result
            requeued, lost = store.recover_expired(
                conn, now=self.due_before, max_retries=ctx.settings.max_retries)
            result.recovered, result.failed = requeued + lost, lost
            if requeued or lost:
                log.warning("recovered %d expired leases (%d failed for good)",
                            requeued + lost, lost)
            batch = self._claim(conn)
            if not batch:
                self._finish(conn)  # an idle pass: one transaction in all
                return result
        # A database error from here on leaves the run unfinished (health must not count
        # it) and the held follow-ups leased: the next pass after the lease delivers them.
        self._deliver_all(batch)
        with ctx.db.transaction() as conn:
            self._finish(conn)
        log.info("run-due %s: %s", run_id, result.counts)
        return result

    def _deliver_all(self, batch: list[dict[str, Any]]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        pool = (ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="send")
                if self.options.concurrency > 1 else None)
        try:
            while batch:
                outcomes = self._send_batch(batch, self.claimed_at, pool)
                with self.ctx.db.transaction() as conn:
                    self._write_back(conn, outcomes)
                    # The next claim shares the write-back's transaction: one round trip less.
                    batch = self._claim(conn)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    def _claim(self, conn: Any) -> list[dict[str, Any]]:
        from followup_cli.store import delivery as store

        result, options = self.result, self.options
        if result.released:
            # Sends are too slow for the lease: claiming more would only release them too.
            result.stopped = "lease"
            return []
        if time.monotonic() - self.started >= options.time_budget:
            result.stopped = "time_budget"
            return []
        size = self.batch_cap
        if options.limit is not None:
            size = min(size, options.limit - result.claimed)
            if size <= 0:
                result.stopped = "limit"
                return []
        # Taken before the claim, so the send cutoff errs early, never late.
        self.claimed_at = time.monotonic()
        now = self.ctx.now()
        rows = store.claim_due(conn, due_before=self.due_before, limit=size,
                               run_id=str(result.run_id),
                               locked_until=now + timedelta(seconds=self.lease))
        result.claimed += len(rows)
        return rows

    def _send_batch(self, batch: list[dict[str, Any]], claimed_at: float,
                    pool: ThreadPoolExecutor | None) -> list[_Outcome]:
        # No send starts after this: it could then outlive the lease and race the pass
        # that recovers it. Whatever is left goes back to pending untouched.
        cutoff = claimed_at + self.lease - self.margin - self.timeout

        def attempt(row: dict[str, Any]) -> _Outcome:
            if time.monotonic() > cutoff:
                return _Outcome(row, sent=False)
            return self._send_one(row)

        if pool is None:
            return [attempt(row) for row in batch]
        return list(pool.map(attempt, batch))

    def _send_one(self, row: dict[str, Any]) -> _Outcome:
        try:
            self.sender.send(payload(row))
        except DeliveryError as error:
            return _Outcome(row, sent=True, at=self.ctx.now(), error=error)
        except Exception as error:  # a sender bug must not abort the pass
            # The type only: an exception's text might quote the message.
            log.error("sender raised %s for follow-up %s", type(error).__name__, row["id"])
            return _Outcome(row, sent=True, at=self.ctx.now(), error=DeliveryError(
                f"sender error: {type(error).__name__}: {error}", transient=True))
        return _Outcome(row, sent=True, at=self.ctx.now())

    def _write_back(self, conn: Any, outcomes: list[_Outcome]) -> None:
        from followup_cli.store import delivery as store

        result, run_id = self.result, str(self.result.run_id)
        max_retries = self.ctx.settings.max_retries
        executed: list[tuple[str, datetime]] = []
        attempts_failed: list[dict[str, Any]] = []
        released: list[str] = []
        for outcome in outcomes:
            row = outcome.row
            if not outcome.sent:
                released.append(row["id"])
                continue
            assert outcome.at is not None
            if outcome.error is None:
                executed.append((row["id"], outcome.at))
                continue
            error = outcome.error
            state = after_failure(
                retry_count=int(row["retry_count"]), max_retries=max_retries,
                transient=error.transient, retry_after=error.retry_after, now=outcome.at,
                next_attempt_at=row["next_attempt_at"])
            attempts_failed.append({
                "b_id": row["id"], "b_run": run_id, "b_status": state.status,
                "b_retry_count": state.retry_count, "b_error": str(error),
                "b_next": state.next_attempt_at, "b_at": outcome.at})
            if state.status == "failed":
                result.failed += 1
                log.warning("follow-up %s failed for good after %d attempts",
                            row["id"], state.retry_count)
            else:
                result.retried += 1
                log.info("follow-up %s: attempt %d failed, next at %s",
                         row["id"], state.retry_count, iso(state.next_attempt_at))
            if len(result.problems) < PROBLEMS_SHOWN:
                result.problems.append({
                    "id": row["id"], "status": state.status,
                    "retry_count": state.retry_count, "error": str(error),
                    "next_attempt_at": iso(state.next_attempt_at)
                    if state.status == "pending" else None})
        store.mark_executed(conn, run_id, executed)
        store.mark_attempt_failed(conn, attempts_failed)
        result.released += store.release(conn, released, run_id)
        result.executed += len(executed)
        if released:
            log.warning("released %d claimed follow-ups unsent: the lease would not cover "
                        "them (lower --batch-size or raise --concurrency)", len(released))
        if getattr(self.sender, "prints_deliveries", False):
            sent = {o.row["id"] for o in outcomes if o.sent and o.error is None}
            collected: list[dict[str, Any]] = getattr(self.sender, "payloads", [])
            result.deliveries.extend(p for p in collected if p["id"] in sent)
            collected.clear()

    # --- the run record -----------------------------------------------------------------

    def _finish(self, conn: Any) -> None:
        from followup_cli.store import runs

        self.result.seconds = time.monotonic() - self.started
        runs.finish(conn, run_id=str(self.result.run_id), finished_at=self.ctx.now(),
                    status="ok", counts=self.result.counts)

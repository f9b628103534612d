"""The statements the store runs by name, written as SQLAlchemy Core.

They are compiled per dialect ahead of time (`python scripts/sql_text.py` writes
store/sql_text.py; CI checks it is current) and run from that text by store/executor.py on
whichever connection the caller holds: SQLAlchemy's, or the raw driver's. A booking on
PostgreSQL thus never imports SQLAlchemy (about 180 ms of its cold start), while the SQL is
still written once, here, from the rules in db/rules.py. A process that runs them by name
never imports this module; the store's other Core queries (stats, the scan's bulk reads)
build on its helpers.

A statement's parameters are named bindparams; a constant is a bound value, recorded beside
the text as a default. A builder returns None for a dialect the statement does not run on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.compiler import SQLCompiler

from followup_cli.db import rules, states
from followup_cli.db.schema import JSONDocument, UTCDateTime
from followup_cli.db.schema import ai_conversations as conv
from followup_cli.db.schema import ai_messages as msg
from followup_cli.db.schema import followup_runs as runs
from followup_cli.db.schema import followup_user_guards as guards
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.store.stage import (
    ACTIVE,
    ADMITTED,
    AT_CAP,
    DUPLICATE,
    OVER_LIMIT,
    STAGE_FILLFACTOR,
    STAGE_NAME,
)

Built = sa.ClauseElement | str | None
BUILDERS: dict[str, Callable[[str], Built]] = {}


def statement(name: str) -> Callable[[Callable[[str], Built]], Callable[[str], Built]]:
    def register(build: Callable[[str], Built]) -> Callable[[str], Built]:
        BUILDERS[name] = build
        return build
    return register


def dialect(name: str) -> sa.Dialect:
    """The dialect the text is compiled for: the drivers' own parameter styles, named
    (psycopg2's pyformat, sqlite3's named), so a call passes a dict either way."""
    made: Any = (postgresql.psycopg2.dialect() if name == "postgresql"  # type: ignore[no-untyped-call]
                 else sqlite.pysqlite.dialect(paramstyle="named"))
    return cast(sa.Dialect, made)


# --- the staging table ------------------------------------------------------------------

stage = sa.Table(
    STAGE_NAME,
    sa.MetaData(),
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    *(sa.Column(c.name, c.type) for c in sf.columns),
    # scan-inactive: the row stands only while the user's last activity is still at or
    # before this instant (they may have written since the candidate query)
    sa.Column("inactive_before", UTCDateTime()),
    sa.Column("last_activity", UTCDateTime()),
    sa.Column("outcome", sa.String(20)),
    sa.Column("existing_id", sa.String(255)),
    sa.Column("wave", sa.Integer()),
    prefixes=["TEMPORARY"],
)
# What a creator stages; the rest is written by the waves.
STAGE_INPUT = ("seq", *(c.name for c in sf.columns), "inactive_before", "last_activity")


def column_kinds(table: sa.Table) -> dict[str, str]:
    """How COPY writes each column: `time`, `json` or `text`."""
    return {c.name: ("time" if isinstance(c.type, UTCDateTime) else
                     "json" if isinstance(c.type, JSONDocument) else "text")
            for c in table.columns}


@statement("stage.create")
def _create_stage(name: str) -> str:
    ddl = " ".join(str(sa.schema.CreateTable(stage, if_not_exists=True)
                       .compile(dialect=dialect(name))).split())
    if name == "postgresql":
        # emptied at every commit, kept for the session
        ddl += f" WITH (fillfactor = {STAGE_FILLFACTOR}) ON COMMIT DELETE ROWS"
    return ddl


@statement("stage.clear")
def _clear_stage(name: str) -> Built:
    return sa.delete(stage) if name == "sqlite" else None  # PostgreSQL: ON COMMIT


@statement("stage.insert")
def _insert_stage(name: str) -> Built:
    # SQLite's executemany; PostgreSQL stages with COPY.
    return (sa.insert(stage).values({c: sa.bindparam(c) for c in STAGE_INPUT})
            if name == "sqlite" else None)


# --- guards ------------------------------------------------------------------------------

def _lock_guards(users: sa.Select[Any]) -> sa.ClauseElement:
    """Insert or lock the guard row of each user, in user_id order (one order for every
    writer, bulk or single: no deadlocks), in one statement.

    ON CONFLICT DO UPDATE locks the row it conflicts with even when its WHERE updates
    nothing, and PostgreSQL makes "insert, or lock the row that is there" atomic: a guard
    deleted meanwhile (forget-user) is inserted instead. A guard this transaction inserts
    is as good as locked: another writer's insert of it waits for this transaction, and
    finds it after."""
    upsert = postgresql.insert(guards).from_select(
        ["user_id"], users.distinct().order_by(sa.text("1")))
    return upsert.on_conflict_do_update(
        index_elements=[guards.c.user_id], set_={"user_id": upsert.excluded.user_id},
        where=sa.false())


@statement("guards.lock_staged")
def _lock_staged(name: str) -> Built:
    # Row locks live in the tuples, not in PostgreSQL's shared lock table, so a million
    # users fit. SQLite needs none: its write transactions are serialized (BEGIN IMMEDIATE).
    return _lock_guards(sa.select(stage.c.user_id)) if name == "postgresql" else None


@statement("guards.lock")
def _lock_named(name: str) -> Built:
    if name != "postgresql":
        return None
    given = sa.func.unnest(sa.bindparam("users", type_=sa.ARRAY(sa.String))
                           ).table_valued("u").render_derived()
    return _lock_guards(sa.select(given.c.u))


@statement("guards.forget")
def _forget_guard(name: str) -> Built:
    return sa.delete(guards).where(guards.c.user_id == sa.bindparam("user_id"))


# --- waves -------------------------------------------------------------------------------

@statement("admission.note_activity")
def _note_activity(name: str) -> Built:
    # Only rows whose value changes are written: the scan stages the last activity its
    # candidate query saw, so a user who has not written since costs a read, not an update
    # (the wave's own update of the row then stays heap-only: see STAGE_FILLFACTOR).
    s = stage.alias("s")
    latest = (sa.select(s.c.seq, rules.last_activity(msg, s.c.user_id).label("value"))
              .where(s.c.trigger_type == states.REENGAGEMENT).subquery("latest"))
    return (sa.update(stage)
            .where(stage.c.seq == latest.c.seq,
                   stage.c.last_activity.is_distinct_from(latest.c.value))
            .values(last_activity=latest.c.value))


@statement("admission.mark_active")
def _mark_active(name: str) -> Built:
    return (sa.update(stage)
            .where(stage.c.outcome.is_(None), stage.c.inactive_before.is_not(None),
                   sa.or_(stage.c.last_activity.is_(None),
                          stage.c.last_activity > stage.c.inactive_before))
            .values(outcome=ACTIVE))


def _conflicts(requeue: bool) -> sa.Subquery:
    """(seq, existing) of every undecided staged row that conflicts with the table, and
    the follow-up it duplicates (post-event: the oldest live one in the window;
    re-engagement: the newest one closing the period). Set-based: one join per rule, so
    its cost follows the users' live follow-ups, not one lookup per staged row."""
    s, f = stage.alias("s"), sf.alias("f")
    # A failed follow-up put back by retry must not count against itself (a failed
    # re-engagement created after the user's last activity closes its own period).
    hidden = [f.c.id != s.c.id] if requeue else []

    def matches(kind: str, rule: sa.ColumnElement[bool], *order: Any) -> sa.Select[Any]:
        return (sa.select(s.c.seq, f.c.id.label("existing"),
                          sa.func.row_number().over(partition_by=s.c.seq, order_by=order)
                          .label("rank"))
                .select_from(s.join(f, sa.and_(rule, *hidden)))
                .where(s.c.outcome.is_(None), s.c.trigger_type == kind))

    found = sa.union_all(
        matches(states.POST_EVENT, rules.duplicates_post_event(f, s.c.user_id, s.c.event_at),
                f.c.created_at, f.c.id),
        matches(states.REENGAGEMENT, rules.closes_period(f, s.c.user_id, s.c.last_activity),
                f.c.created_at.desc(), f.c.id),
    ).subquery("found")
    return (sa.select(found.c.seq, found.c.existing).where(found.c.rank == 1)
            .subquery("conflicts"))


def _mark_duplicates(requeue: bool) -> sa.ClauseElement:
    conflicts = _conflicts(requeue)
    return (sa.update(stage).where(stage.c.seq == conflicts.c.seq)
            .values(outcome=DUPLICATE, existing_id=conflicts.c.existing))


@statement("admission.mark_duplicates")
def _mark_new_duplicates(name: str) -> Built:
    return _mark_duplicates(requeue=False)


@statement("admission.mark_duplicates_requeue")
def _mark_requeue_duplicates(name: str) -> Built:
    return _mark_duplicates(requeue=True)


@statement("admission.pick")
def _pick(name: str) -> Built:
    """The first undecided row of each user is admitted, or at_cap when the user already
    has `cap` live follow-ups."""
    first = (sa.select(stage.c.user_id, sa.func.min(stage.c.seq).label("seq"))
             .where(stage.c.outcome.is_(None)).group_by(stage.c.user_id).cte("first"))
    f = sf.alias("f")
    live = (sa.select(f.c.user_id, sa.func.count().label("n"))
            .where(rules.is_live(f), f.c.user_id.in_(sa.select(first.c.user_id)))
            .group_by(f.c.user_id).subquery("live"))
    cap = sa.bindparam("cap", type_=sa.Integer())
    decided = (sa.select(first.c.seq, sa.case(
        (rules.at_cap(sa.func.coalesce(live.c.n, 0), cap), AT_CAP), else_=ADMITTED)
        .label("outcome"))
        .select_from(first.outerjoin(live, live.c.user_id == first.c.user_id))
        .subquery("decided"))
    return (sa.update(stage).where(stage.c.seq == decided.c.seq)
            .values(wave=sa.bindparam("wave", type_=sa.Integer()), outcome=decided.c.outcome))


_WAVE = sa.bindparam("wave", type_=sa.Integer())


@statement("admission.picked")
def _picked(name: str) -> Built:
    # Counted, not the pick's rowcount: Python's sqlite3 reports -1 for a statement that
    # begins with WITH.
    return (sa.select(sa.func.count(), sa.func.count(sa.case((stage.c.outcome == AT_CAP, 1))))
            .select_from(stage).where(stage.c.wave == _WAVE))


@statement("admission.limit_wave")
def _limit_wave(name: str) -> Built:
    keep = (sa.select(stage.c.seq)
            .where(stage.c.wave == _WAVE, stage.c.outcome == ADMITTED)
            .order_by(stage.c.seq).limit(sa.bindparam("room", type_=sa.Integer())))
    return (sa.update(stage)
            .where(stage.c.wave == _WAVE, stage.c.outcome == ADMITTED,
                   stage.c.seq.not_in(keep.scalar_subquery()))
            .values(outcome=OVER_LIMIT))


@statement("admission.count_admitted")
def _count_admitted(name: str) -> Built:
    return (sa.select(sa.func.count()).select_from(stage)
            .where(stage.c.outcome == ADMITTED, stage.c.wave == _WAVE))


@statement("admission.insert")
def _insert_admitted(name: str) -> Built:
    columns = [c.name for c in sf.columns]
    chosen = (sa.select(*(stage.c[c] for c in columns))
              .where(stage.c.wave == _WAVE, stage.c.outcome == ADMITTED))
    insert = postgresql.insert if name == "postgresql" else sqlite.insert
    return insert(sf).from_select(columns, chosen).on_conflict_do_nothing()


@statement("admission.insert_collided")
def _insert_collided(name: str) -> Built:
    """Rows the insert skipped: another writer's live follow-up of the same kind took the
    user's place meanwhile (a program that takes no guard row, such as the original
    application). It is the one reported, as for any duplicate."""
    winner = (sa.select(sf.c.id)
              .where(sf.c.user_id == stage.c.user_id, sf.c.trigger_type == stage.c.trigger_type,
                     rules.is_live(sf))
              .order_by(sf.c.created_at, sf.c.id).limit(1).scalar_subquery())
    return (sa.update(stage)
            .where(stage.c.wave == _WAVE, stage.c.outcome == ADMITTED,
                   ~sa.exists().where(sf.c.id == stage.c.id))
            .values(outcome=DUPLICATE, existing_id=winner))


@statement("admission.requeue")
def _requeue(name: str) -> Built:
    chosen = sa.select(stage.c.id).where(stage.c.wave == _WAVE, stage.c.outcome == ADMITTED)
    return (sa.update(sf).where(sf.c.id.in_(chosen), sf.c.status == states.FAILED)
            .values(status=states.PENDING,
                    next_attempt_at=sa.bindparam("now", type_=UTCDateTime()),
                    retry_count=0, locked_until=None, locked_by=None))


@statement("admission.tally")
def _tally(name: str) -> Built:
    return (sa.select(stage.c.outcome, stage.c.trigger_type, sa.func.count())
            .group_by(stage.c.outcome, stage.c.trigger_type))


def _decided() -> sa.Select[Any]:
    return (sa.select(stage.c.seq, stage.c.id, stage.c.user_id, stage.c.trigger_type,
                      stage.c.existing_id)
            .where(stage.c.outcome == sa.bindparam("outcome")).order_by(stage.c.seq))


@statement("admission.decided")
def _decided_all(name: str) -> Built:
    return _decided()


@statement("admission.decided_first")
def _decided_first(name: str) -> Built:
    return _decided().limit(sa.bindparam("limit", type_=sa.Integer()))


# --- what a single booking reads ----------------------------------------------------------

def newest_scores(conversation_id: Any) -> sa.Select[Any]:
    """The newest EMOTION_WINDOW scores of the conversation `conversation_id` (a column or
    a parameter)."""
    return (sa.select(msg.c.emotion_score)
            .where(msg.c.conversation_id == conversation_id, msg.c.emotion_score.is_not(None))
            .order_by(msg.c.created_at.desc(), msg.c.id.desc())
            .limit(states.EMOTION_WINDOW))


@statement("conversations.recent_scored")
def _recent_scored(name: str) -> Built:
    return newest_scores(sa.bindparam("conversation_id")).with_only_columns(
        msg.c.created_at, msg.c.role, msg.c.emotion_score)


@statement("conversations.exists")
def _conversation_exists(name: str) -> Built:
    return sa.select(conv.c.id).where(conv.c.id == sa.bindparam("conversation_id"))


@statement("conversations.latest_by_message")
def _latest_by_message(name: str) -> Built:
    return (sa.select(msg.c.conversation_id)
            .where(msg.c.user_id == sa.bindparam("user_id"), rules.is_activity(msg))
            .order_by(msg.c.created_at.desc(), msg.c.id.desc()).limit(1))


@statement("conversations.latest_created")
def _latest_created(name: str) -> Built:
    return (sa.select(conv.c.id).where(conv.c.user_id == sa.bindparam("user_id"))
            .order_by(conv.c.created_at.desc(), conv.c.id.desc()).limit(1))


@statement("conversations.last_activity")
def _last_activity(name: str) -> Built:
    return (sa.select(sa.func.max(msg.c.created_at))
            .where(msg.c.user_id == sa.bindparam("user_id"), rules.is_activity(msg)))


@statement("followups.summary")
def _followup_summary(name: str) -> Built:
    return (sa.select(sf.c.scheduled_at, sf.c.template_id, sf.c.conversation_id)
            .where(sf.c.id == sa.bindparam("id")))


# --- health: what `followup health` reads (and `serve`, `stats`) --------------------------

def delay_seconds(dialect_name: str) -> sa.ColumnElement[Any]:
    """executed_at − scheduled_at in seconds, the guide's delay metric."""
    if dialect_name == "postgresql":
        return sa.extract("epoch", sf.c.executed_at - sf.c.scheduled_at)
    # SQLite keeps UTC text; julianday() reads it, in days.
    return (sa.func.julianday(sf.c.executed_at) - sa.func.julianday(sf.c.scheduled_at)) * 86400.0


def failed_at() -> sa.ColumnElement[Any]:
    """When a failed follow-up failed: its last attempt (rows written by other programs may
    lack it, then its creation)."""
    return sa.func.coalesce(sf.c.last_attempt_at, sf.c.created_at)


_COUNT = sa.select(sa.func.count()).select_from(sf)


def _time(name: str) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=UTCDateTime())


@statement("health.count_by_status")
def _count_by_status(name: str) -> Built:
    return _COUNT.where(sf.c.status == sa.bindparam("status"))


@statement("health.count_executed_between")
def _count_executed_between(name: str) -> Built:
    return _COUNT.where(sf.c.executed_at >= _time("start"), sf.c.executed_at < _time("end"))


@statement("health.count_failed_since")
def _count_failed_since(name: str) -> Built:
    return _COUNT.where(sf.c.status == states.FAILED, failed_at() > _time("since"))


@statement("health.delay_since")
def _delay_since(name: str) -> Built:
    return (sa.select(sa.func.count(), sa.func.avg(delay_seconds(name))).select_from(sf)
            .where(sf.c.status == states.EXECUTED, sf.c.executed_at > _time("since")))


@statement("health.count_overdue")
def _count_overdue(name: str) -> Built:
    return _COUNT.where(sf.c.status == states.PENDING, sf.c.scheduled_at < _time("cutoff"))


def _last_run(*where: sa.ColumnElement[bool]) -> sa.Select[Any]:
    # ix_followup_runs_kind_finished
    return (sa.select(runs.c.finished_at, runs.c.status, runs.c.counts)
            .where(runs.c.kind == sa.bindparam("kind"), runs.c.finished_at.is_not(None), *where)
            .order_by(runs.c.finished_at.desc()).limit(1))


@statement("health.last_run")
def _last_run_any(name: str) -> Built:
    return _last_run()


@statement("health.last_run_of_status")
def _last_run_of(name: str) -> Built:
    return _last_run(runs.c.status == sa.bindparam("status"))


@statement("health.last_run_not_of_status")
def _last_run_not_of(name: str) -> Built:
    return _last_run(runs.c.status != sa.bindparam("status"))


@statement("health.first_finished_at")
def _first_finished_at(name: str) -> Built:
    return sa.select(sa.func.min(runs.c.finished_at)).where(runs.c.kind == sa.bindparam("kind"))


# --- the delivery pass: lease recovery, the claim, renewal, write-back ---------------------
#
# The claim and the recovery read only the partial indexes ix_scheduled_followups_due
# (status = 'pending') and ix_scheduled_followups_leased (status = 'processing'), so their
# cost does not grow with the executed, failed or cancelled rows the table holds. On
# PostgreSQL both lock what they take with FOR UPDATE SKIP LOCKED inside a MATERIALIZED CTE
# (the fence matters, as Oban found: a LIMIT subquery inlined into an UPDATE may be re-run
# by the planner and lock more rows); SQLite's write transactions are serialized
# (BEGIN IMMEDIATE), so a subquery picks the ids. SQLite's planner, lacking statistics,
# prefers the (status, scheduled_at) index and sorts every pending row; the partial index
# yields them in order, and SQLAlchemy renders no SQLite index hints: hence its text.

CLAIM_COLUMNS = ("id", "user_id", "conversation_id", "trigger_type", "trigger_data",
                 "template_id", "message_content", "scheduled_at", "next_attempt_at",
                 "retry_count", "created_at")
LEASE_EXPIRED = "lease expired: the pass holding it died before writing back"
_IS_HELD = rules.is_held(sf)
_HOLDER = sf.c.locked_by == sa.bindparam("run")


def _sqlite_chosen(index: str, where: str, tail: str) -> str:
    return (f"id IN (SELECT id FROM scheduled_followups INDEXED BY {index} WHERE {where}"
            f" {tail})")


def _recovery() -> sa.Update:
    attempts = sf.c.retry_count + 1
    return sa.update(sf).values(
        status=sa.case((attempts > sa.bindparam("failed_after", type_=sa.Integer()),
                        states.FAILED), else_=states.PENDING),
        retry_count=attempts,
        error_message=LEASE_EXPIRED,
        next_attempt_at=_time("now"),
        # when the lost attempt is known to have ended: the failure alert and
        # `cleanup --include-failed` read failures by it
        last_attempt_at=_time("now"),
        locked_until=None,
        locked_by=None,
    ).returning(sf.c.status)


@statement("delivery.recover")
def _recover(name: str) -> Built:
    expired = sa.and_(_IS_HELD, sf.c.locked_until < _time("now"))
    if name == "postgresql":
        chosen = (sa.select(sf.c.id).where(expired).limit(sa.bindparam("n", type_=sa.Integer()))
                  .with_for_update(skip_locked=True).cte("chosen")
                  .prefix_with("MATERIALIZED"))
        return _recovery().where(sf.c.id == chosen.c.id)
    return _recovery().where(sa.text(_sqlite_chosen(
        "ix_scheduled_followups_leased", f"status = '{states.PROCESSING}' AND locked_until < :now",
        "LIMIT :n")), _IS_HELD)


def _claim() -> sa.Update:
    return (sa.update(sf)
            .values(status=states.PROCESSING, locked_until=_time("until"),
                    locked_by=sa.bindparam("run"))
            .returning(*(sf.c[c] for c in CLAIM_COLUMNS)))


@statement("delivery.claim")
def _claim_due(name: str) -> Built:
    """Up to `n` due follow-ups, oldest first, claimed for the pass `run` until `until`.
    Concurrent passes skip each other's locked rows instead of waiting."""
    if name == "postgresql":
        due = (sa.select(sf.c.id).where(_due()).order_by(sf.c.next_attempt_at)
               .limit(sa.bindparam("n", type_=sa.Integer()))
               .with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED"))
        return _claim().where(sf.c.id == due.c.id)
    return _claim().where(sa.text(_sqlite_chosen(
        "ix_scheduled_followups_due",
        f"status = '{states.PENDING}' AND next_attempt_at <= :due",
        "ORDER BY next_attempt_at LIMIT :n")))


@statement("delivery.claim_plan")
def _claim_plan(name: str) -> Built:
    """The claim's plan must not depend on statistics: right after a bulk import
    (autovacuum may be off) the planner would sort every due row for each claim (12 ms a
    claim instead of 0.7 ms at 100,000 due); walking the due index in order is always
    right, so the claim's transaction says so (PostgreSQL)."""
    return ("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; "
            "SET LOCAL enable_sort = off") if name == "postgresql" else None


@statement("delivery.renew")
def _renew(name: str) -> Built:
    """The lease of everything the pass `run` still holds, extended (its heartbeat)."""
    return sa.update(sf).where(_IS_HELD, _HOLDER).values(locked_until=_time("until"))


def _written_back(**values: Any) -> sa.Update:
    # Every write-back is fenced by the lease holder: a pass whose lease was recovered and
    # claimed by another pass can never overwrite that pass's result.
    return (sa.update(sf).where(_HOLDER, _IS_HELD)
            .values(last_attempt_at=_time("at"), locked_until=None, locked_by=None, **values))


@statement("delivery.mark_executed_at")
def _mark_executed_at(name: str) -> Built:
    # PostgreSQL: a batch written at one instant, one statement for all its ids.
    if name != "postgresql":
        return None
    return _written_back(status=states.EXECUTED, executed_at=_time("at")).where(
        sf.c.id == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.String()))))


@statement("delivery.mark_executed")
def _mark_executed(name: str) -> Built:
    # PostgreSQL: one statement for a batch written at several instants; SQLite: per row
    # (one executemany).
    if name == "postgresql":
        return sa.text(
            "UPDATE scheduled_followups AS f SET status = 'executed', executed_at = v.at,"
            " last_attempt_at = v.at, locked_until = NULL, locked_by = NULL"
            " FROM unnest(CAST(:ids AS varchar[]), CAST(:ats AS timestamptz[])) AS v(id, at)"
            f" WHERE f.id = v.id AND f.locked_by = :run AND f.status = '{states.PROCESSING}'")
    return _written_back(status=states.EXECUTED, executed_at=_time("at")).where(
        sf.c.id == sa.bindparam("id"))


@statement("delivery.mark_failed")
def _mark_failed(name: str) -> Built:
    """An attempt that failed: pending again (a retry at `next`) or failed for good.
    scheduled_at is never touched: the delay metric counts from the original time."""
    if name == "postgresql":
        return sa.text(
            "UPDATE scheduled_followups AS f SET status = v.status,"
            " retry_count = v.retry_count, error_message = v.error,"
            " next_attempt_at = v.next, last_attempt_at = v.at,"
            " locked_until = NULL, locked_by = NULL"
            " FROM unnest(CAST(:ids AS varchar[]), CAST(:statuses AS varchar[]),"
            " CAST(:retry_counts AS integer[]), CAST(:errors AS text[]),"
            " CAST(:nexts AS timestamptz[]), CAST(:ats AS timestamptz[]))"
            " AS v(id, status, retry_count, error, next, at)"
            f" WHERE f.id = v.id AND f.locked_by = :run AND f.status = '{states.PROCESSING}'")
    return _written_back(
        status=sa.bindparam("status"), retry_count=sa.bindparam("retry_count"),
        error_message=sa.bindparam("error"), next_attempt_at=_time("next"),
    ).where(sf.c.id == sa.bindparam("id"))


@statement("delivery.release")
def _release(name: str) -> Built:
    """Claimed but unattempted follow-ups handed back to pending, untouched otherwise
    (PostgreSQL: every id at once; SQLite: per row)."""
    ids = (sf.c.id == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.String())))
           if name == "postgresql" else sf.c.id == sa.bindparam("id"))
    return (sa.update(sf).where(ids, _HOLDER, _IS_HELD)
            .values(status=states.PENDING, locked_until=None, locked_by=None))


def _due() -> sa.ColumnElement[bool]:
    return sa.and_(rules.is_due_status(sf), sf.c.next_attempt_at <= _time("due"))


@statement("delivery.count_due")
def _count_due(name: str) -> Built:
    return _COUNT.where(_due())


@statement("delivery.list_due")
def _list_due(name: str) -> Built:
    """The first `n` due follow-ups, in claim order, locking nothing (a dry run)."""
    return (sa.select(*(sf.c[c] for c in CLAIM_COLUMNS)).where(_due())
            .order_by(sf.c.next_attempt_at).limit(sa.bindparam("n", type_=sa.Integer())))


# --- the run record ----------------------------------------------------------------------

@statement("runs.start")
def _start_run(name: str) -> Built:
    return sa.insert(runs).values(
        id=sa.bindparam("id"), kind=sa.bindparam("kind"), host=sa.bindparam("host"),
        pid=sa.bindparam("pid", type_=sa.Integer()), started_at=_time("at"),
        heartbeat_at=_time("at"), status=states.RUN_RUNNING,
        counts=sa.bindparam("counts"))


@statement("runs.heartbeat")
def _heartbeat(name: str) -> Built:
    return sa.update(runs).where(runs.c.id == sa.bindparam("id")).values(heartbeat_at=_time("at"))


@statement("runs.finish")
def _finish_run(name: str) -> Built:
    return sa.update(runs).where(runs.c.id == sa.bindparam("id")).values(
        finished_at=_time("at"), heartbeat_at=_time("at"), status=sa.bindparam("status"),
        counts=sa.bindparam("counts"), error_message=sa.bindparam("error"))


@statement("runs.running")
def _running(name: str) -> Built:
    return (sa.select(runs.c.id, runs.c.host, runs.c.pid, runs.c.started_at,
                      runs.c.heartbeat_at)
            .where(runs.c.kind == sa.bindparam("kind"), runs.c.finished_at.is_(None)))


@statement("runs.abandon")
def _abandon(name: str) -> Built:
    return (sa.update(runs).where(runs.c.id == sa.bindparam("id"), runs.c.finished_at.is_(None))
            .values(status=states.RUN_ABANDONED, finished_at=_time("at"),
                    error_message="the pass died before finishing"))


@statement("runs.summaries_since")
def _summaries_since(name: str) -> Built:
    """The counts of the passes of a kind finished since `since` but `run`, newest first
    (where the retry summaries they printed are kept)."""
    return (sa.select(runs.c.counts)
            .where(runs.c.kind == sa.bindparam("kind"), runs.c.finished_at >= _time("since"),
                   runs.c.id != sa.bindparam("run"))
            .order_by(runs.c.finished_at.desc()))


@statement("runs.counts")
def _counts(name: str) -> Built:
    return sa.select(runs.c.counts).where(runs.c.id == sa.bindparam("id"))


@statement("runs.set_counts")
def _set_counts(name: str) -> Built:
    return (sa.update(runs).where(runs.c.id == sa.bindparam("id"))
            .values(counts=sa.bindparam("counts")))


# --- the generated module ----------------------------------------------------------------

def compiled(name: str, dialect_name: str) -> tuple[str, dict[str, Any]] | None:
    """(text, defaults) of one statement for one dialect: the constants it binds are the
    defaults; every other parameter must be a named bindparam the caller passes."""
    built = BUILDERS[name](dialect_name)
    if built is None:
        return None
    if isinstance(built, str):
        # run with a parameter dict, so psycopg2 reads `%` as a placeholder: escaped as
        # SQLAlchemy escapes compiled text
        return (built.replace("%", "%%") if dialect_name == "postgresql" else built), {}
    done = cast(SQLCompiler, built.compile(dialect=dialect(dialect_name)))
    # A bindparam made without a value is one the caller passes; every other bound value
    # (None included: `locked_until=None`) is a constant of the statement.
    required = {key for key, bind in done.binds.items() if bind.required}
    defaults = {key: value for key, value in done.params.items() if key not in required}
    # SQLAlchemy names an anonymous parameter after its column with a counter (outcome_1):
    # nobody could pass it by a name that means anything.
    anonymous = sorted(key for key in required if re.search(r"_\d+$", key))
    if anonymous:
        raise ValueError(f"{name}: parameters without a name or a value: {anonymous}")
    return str(done).strip(), defaults


def generate() -> str:
    """The source of followup_cli/store/sql_text.py."""
    lines = [
        '"""Generated by `python scripts/sql_text.py` from followup_cli/store/statements.py:',
        "do not edit. CI fails when it is not what the statements compile to today.",
        "",
        "Each statement: its text for the driver (psycopg2's pyformat, sqlite3's named",
        'parameters) and the constants it binds."""',
        "",
        "from typing import Any",
        "",
        f"STAGE_INPUT = {STAGE_INPUT!r}",
        f"FOLLOWUP_COLUMNS = {tuple(c.name for c in sf.columns)!r}",
        "COLUMN_KINDS: dict[str, dict[str, str]] = {",
        f"    {STAGE_NAME!r}: {column_kinds(stage)!r},",
        f"    {sf.name!r}: {column_kinds(sf)!r},",
        "}",
    ]
    for dialect_name in ("postgresql", "sqlite"):
        lines += ["", f"{dialect_name.upper()}: dict[str, tuple[str, dict[str, Any]]] = {{"]
        for name in sorted(BUILDERS):
            found = compiled(name, dialect_name)
            if found is None:
                continue
            text, defaults = found
            lines.append(f"    {name!r}: (")
            parts = text.splitlines()
            for i, part in enumerate(parts):
                end = "\\n" if i < len(parts) - 1 else ""
                lines.append(f'        "{_escaped(part)}{end}"')
            lines.append(f"        , {defaults!r}),")
        lines.append("}")
    return "\n".join(lines) + "\n"


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')

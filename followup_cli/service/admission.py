"""The one admission path. Every creator of follow-ups goes through it: `schedule
post-event`, `schedule reengagement`, `schedule import`, `scan-inactive`, `retry`, the demo
and the Python API. A single `schedule` is an admission of one row.

Within one transaction: stage the rendered rows, lock their users' guard rows, then apply
the duplicate, period and cap rules set-based (store/admission.py) and write what is
admitted. The rules themselves are defined once, in db/rules.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from followup_cli.store import admission as store
from followup_cli.store import stage
from followup_cli.store.executor import Sql, of

ADMITTED, DUPLICATE, AT_CAP, ACTIVE, OVER_LIMIT = (
    stage.ADMITTED, stage.DUPLICATE, stage.AT_CAP, stage.ACTIVE, stage.OVER_LIMIT)
# A stage this large gets statistics before the waves are planned (autovacuum may be off,
# and a temporary table is never analyzed by it anyway).
ANALYZE_STAGE_MIN = 1000

Seal = Callable[[dict[str, Any]], dict[str, Any]]
T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last one shorter): how bulk creators stage a stream
    without holding it whole."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class Summary:
    """How the staged rows were decided: (outcome, trigger_type) → rows."""

    tally: dict[tuple[str, str], int] = field(default_factory=dict)
    waves: int = 0

    def count(self, outcome: str, trigger_type: str | None = None) -> int:
        return sum(n for (o, t), n in self.tally.items()
                   if o == outcome and (trigger_type is None or t == trigger_type))

    @property
    def admitted(self) -> int:
        return self.count(ADMITTED)


class Admission:
    """One admission, inside the caller's transaction: `add` rows (in as many chunks as
    needed), then `admit` once."""

    def __init__(self, conn: Any, *, cap: int, seal: Seal | None = None) -> None:
        # A SQLAlchemy Connection or an executor.Sql: the statements run on its DB-API
        # connection, in its transaction, either way.
        self.conn: Sql = of(conn)
        self.cap = cap
        self.seal = seal
        self.staged = 0
        store.open_stage(self.conn)

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        """Stage rendered rows: scheduled_followups columns plus `seq` (the order in which
        rows of one user are admitted; unique) and, for the scan, `inactive_before`. `rows`
        may be a generator: on PostgreSQL each row is rendered while the server stores the
        ones before it. An exception it raises comes out of `add` as it was raised, and
        the transaction can then only be rolled back."""
        if self.seal is not None:
            rows = map(self.seal, rows)
        self.staged += store.add(self.conn, rows)

    def admit(self, *, requeue_at: datetime | None = None, limit: int | None = None,
              stop_at_cap: bool = False, dry_run: bool = False) -> Summary:
        """Decide every staged row and write the admitted ones.

        requeue_at: the staged rows are failed follow-ups to put back to pending, due then
        (retry), instead of new rows to insert.
        limit: admit at most this many (scan-inactive --limit); the rest are `over_limit`.
        stop_at_cap: stop at the first row refused by the cap (import refuses the file).
        dry_run: decide the first wave and write nothing, taking no guard: exact when each
        user has at most one staged row (the scan's dry run).
        """
        conn = self.conn
        if self.staged >= ANALYZE_STAGE_MIN:
            store.allow_time_for(conn, self.staged)
            store.analyze(conn)
        if not dry_run:
            store.lock_staged_users(conn)
        # Rows still undecided, from the statements' own counts: the loop ends with the
        # wave that decides the last row, instead of one more wave that finds none (for a
        # stage of one row per user, the common case, that wave is a join of the whole
        # stage against the table for nothing). A count the driver cannot give (negative)
        # leaves the loop to end as it always could: on a wave that picks no row.
        undecided = self.staged - store.note_activity(conn)
        admitted = 0
        wave = 0
        while True:
            wave += 1
            undecided -= store.mark_duplicates(conn, requeue=requeue_at is not None)
            picked = store.pick(conn, wave=wave, cap=self.cap)
            if not picked.rows:
                break
            undecided -= picked.rows
            chosen = picked.admitted
            if limit is not None:
                chosen = store.limit_wave(conn, wave=wave, room=limit - admitted)
            if stop_at_cap and picked.at_cap:
                break
            if dry_run:
                break
            if requeue_at is not None:
                admitted += store.requeue_admitted(conn, wave=wave, now=requeue_at)
            else:
                admitted += store.insert_admitted(conn, wave=wave, admitted=chosen)
            if undecided <= 0:
                break
        return Summary(store.tally(conn), wave)

    def decided(self, outcome: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The rows with `outcome`, in staging order: seq, id, user_id, trigger_type,
        existing_id (the follow-up a duplicate duplicates)."""
        return store.decided(self.conn, outcome, limit)

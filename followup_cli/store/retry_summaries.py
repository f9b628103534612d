"""Which retry summaries recent run-due passes printed, kept in their run records so that
every host (and the next pass) can see what was already said."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from followup_cli.db.schema import followup_runs as runs

# Key of the run record's `counts` that holds the error kinds a pass's summary named.
MARK = "retry_summary"


def said_since(conn: sa.Connection, since: datetime, *, kind: str, exclude_run: str
               ) -> list[list[str]]:
    """The error kinds named by each summary printed by passes finished since `since`
    (newest first). An hour of passes is a few dozen rows per host."""
    rows = conn.execute(
        sa.select(runs.c.counts).where(
            runs.c.kind == kind, runs.c.finished_at >= since, runs.c.id != exclude_run)
        .order_by(runs.c.finished_at.desc())
    ).scalars()
    said: list[list[str]] = []
    for counts in rows:
        kinds = counts.get(MARK) if isinstance(counts, dict) else None
        if isinstance(kinds, list):
            said.append([str(k) for k in kinds])
    return said


def mark_said(conn: sa.Connection, run_id: str, kinds: Sequence[str]) -> None:
    """Record on the pass's own run record that it printed a summary naming `kinds`."""
    counts: Any = conn.execute(
        sa.select(runs.c.counts).where(runs.c.id == run_id)).scalar_one_or_none()
    if not isinstance(counts, dict):
        return  # no record (a dry run): nothing to remember it by
    conn.execute(sa.update(runs).where(runs.c.id == run_id).values(
        counts={**counts, MARK: list(kinds)}))

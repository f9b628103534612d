"""Which retry summaries recent run-due passes printed, kept in their run records so that
every host (and the next pass) can see what was already said. By name (store/statements.py),
like the rest of a pass: on PostgreSQL it runs without SQLAlchemy."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from followup_cli.store.executor import document, of

# Key of the run record's `counts` that holds the error kinds a pass's summary named.
MARK = "retry_summary"


def said_since(conn: Any, since: datetime, *, kind: str, exclude_run: str
               ) -> list[list[str]]:
    """The error kinds named by each summary printed by passes finished since `since`
    (newest first). An hour of passes is a few dozen rows per host."""
    said: list[list[str]] = []
    for (stored,) in of(conn).run("runs.summaries_since", kind=kind, since=since,
                                  run=exclude_run).rows:
        counts = document(stored)
        kinds = counts.get(MARK) if isinstance(counts, dict) else None
        if isinstance(kinds, list):
            said.append([str(k) for k in kinds])
    return said


def mark_said(conn: Any, run_id: str, kinds: Sequence[str]) -> None:
    """Record on the pass's own run record that it printed a summary naming `kinds`."""
    sql = of(conn)
    counts = document(sql.run("runs.counts", id=run_id).scalar())
    if not isinstance(counts, dict):
        return  # no record (a dry run): nothing to remember it by
    sql.run("runs.set_counts", id=run_id, counts=json.dumps({**counts, MARK: list(kinds)}))

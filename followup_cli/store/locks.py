"""Cross-process coordination for rules that span rows (duplicate window, per-user cap).

PostgreSQL: transaction-scoped advisory locks. Single scheduling takes the shared
"scheduling" lock plus one exclusive per-user lock; bulk work (import, scan-inactive) takes
the exclusive "scheduling" lock once instead of thousands of per-user locks, which would
overflow the lock table (max_locks_per_transaction × max_connections).
SQLite: every write transaction already begins IMMEDIATE, so writers are serialized.
"""

from __future__ import annotations

import sqlalchemy as sa

LOCK_SPACE_USER = 7311  # (space, hashtext(user_id))
LOCK_SPACE_GLOBAL = 7312  # (space, 0) = all scheduling, shared by singles, exclusive for bulk
LOCK_SPACE_MIGRATE = 7313


def _is_pg(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql"


def lock_users(conn: sa.Connection, user_ids: list[str]) -> None:
    """Serialize scheduling for these users (a handful: one command's users)."""
    if not _is_pg(conn):
        return
    conn.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:space, 0)"),
                 {"space": LOCK_SPACE_GLOBAL})
    for user_id in sorted(set(user_ids)):  # one order everywhere: no deadlocks
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:space, hashtext(:u))"),
                     {"space": LOCK_SPACE_USER, "u": user_id})


def lock_all_scheduling(conn: sa.Connection) -> None:
    """Exclusive scheduling for a bulk operation: one lock, whatever the number of users."""
    if not _is_pg(conn):
        return
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:space, 0)"),
                 {"space": LOCK_SPACE_GLOBAL})

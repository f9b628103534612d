"""Database plumbing: schema declaration, engines, migrations, error translation.

The constants below are imported by light modules (the idle fast path of `run-due`) that
must not pull SQLAlchemy in. The schema revision this followup needs is not written here:
it is read from the migrations themselves (`followup_cli.db.compat.head_revision()`).
"""

from __future__ import annotations

from typing import Any

# A stuck statement fails after this instead of hanging a cron pass; a wait for a row lock
# gives up sooner, so a row held by another session never stalls a command for long. Both
# are set only where DATABASE_URL leaves them unset (`followup_cli.db.connect`).
STATEMENT_TIMEOUT_MS = 30_000
LOCK_TIMEOUT_MS = 5_000
CONNECT_TIMEOUT_S = 10
SQLITE_BUSY_TIMEOUT_MS = 30_000


def __getattr__(name: str) -> Any:
    # SCHEMA_REVISION was a hand-bumped constant; callers that still import it get the head
    # read from alembic/versions (cached, no Alembic import).
    if name == "SCHEMA_REVISION":
        from followup_cli.db.compat import head_revision

        return head_revision()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Database plumbing: schema declaration, engines, migrations, error translation.

The constants below are imported by light modules (the idle fast path of `run-due`) that
must not pull SQLAlchemy in.
"""

# Alembic head. Checked with one query on every command, so the hot path never imports
# Alembic; tests assert it equals the head of alembic/versions.
SCHEMA_REVISION = "0002_admission_guards"

# A stuck statement (lock wait included) fails after this instead of hanging a cron pass.
STATEMENT_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10
SQLITE_BUSY_TIMEOUT_MS = 30_000

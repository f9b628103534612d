"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}

# The oldest followup release that still works with the schema this migration leaves.
# Expand (add a table, a nullable or defaulted column, an index): the release before this
# one keeps working, so keep the previous migration's value. Contract (drop or rename what
# an older release reads or writes, tighten a constraint it could break): the first release
# that no longer needs it. See CONTRIBUTING.md, "Adding a migration".
oldest_compatible_release = "FILL ME IN"


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}

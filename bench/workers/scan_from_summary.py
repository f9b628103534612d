"""`followup scan-inactive` with its candidates read from a per-user last-activity table
(`user_last_activity`, as `python -m bench.explain summary` builds it) instead of the
aggregate over ai_messages: what such a table would give the scan, everything else as
the release does it. An experiment for a decision (issue 13), never a product path.

    DATABASE_URL=... python bench/workers/scan_from_summary.py scan-inactive --json
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from followup_cli.cli.app import main
from followup_cli.db import rules
from followup_cli.db.schema import UTCDateTime
from followup_cli.db.schema import ai_messages as msg
from followup_cli.db.schema import scheduled_followups as sf
from followup_cli.store import scanning

summary = sa.Table("user_last_activity", sa.MetaData(), sa.Column("user_id", sa.String(255)),
                   sa.Column("last_activity", UTCDateTime()))


def candidates_query(cutoff: datetime, user_ids: Any = None) -> sa.Select[Any]:
    """The release's candidates_query (store/scanning.py), its CTE replaced by the table."""
    a = summary.alias("a")
    return (sa.select(a.c.user_id, a.c.last_activity,
                      rules.conversation_at(msg, a.c.user_id, a.c.last_activity))
            .where(a.c.last_activity <= cutoff,
                   ~sa.exists().where(rules.closes_period(sf, a.c.user_id, a.c.last_activity)))
            .order_by(a.c.last_activity, a.c.user_id))


scanning.candidates_query = candidates_query

if __name__ == "__main__":
    main()

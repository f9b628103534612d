"""The raw limit of an import: COPY of already rendered rows into the same table, in one
transaction, with psycopg2.

    python raw_copy.py DATABASE_URL ROWS.csv
"""

from __future__ import annotations

import json
import sys
import time

import psycopg2

COLUMNS = ("id, conversation_id, user_id, trigger_type, trigger_data, scheduled_at, "
           "next_attempt_at, status, template_id, message_content, created_at, retry_count, "
           "event_at")


def main() -> None:
    url, path = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    conn = psycopg2.connect(url, application_name="bench-raw-copy")
    with conn, conn.cursor() as cur, open(path, encoding="utf-8") as rows:
        cur.copy_expert(f"COPY scheduled_followups ({COLUMNS}) FROM STDIN WITH (FORMAT csv)",
                        rows)
        copied = cur.rowcount
    conn.close()
    print(json.dumps({"copied": copied, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()

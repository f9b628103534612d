"""The raw limit of a delivery pass: a hand-written psycopg2 loop over the same table.

Claims a batch with UPDATE ... RETURNING over a FOR UPDATE SKIP LOCKED subquery, appends
one JSON line per row to the file (one write per batch), marks the batch executed, and
repeats until nothing is due. No lease renewal, no retries, no templates: what any pass
must at least do.

    python raw_loop.py DATABASE_URL OUT.jsonl [BATCH]
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

import psycopg2

CLAIM = """
UPDATE scheduled_followups SET status = 'processing', locked_by = %(run)s,
    locked_until = now() + interval '600 seconds'
WHERE id IN (SELECT id FROM scheduled_followups
             WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
RETURNING id, user_id, conversation_id, trigger_type, template_id, message_content,
    scheduled_at
"""
MARK = """
UPDATE scheduled_followups SET status = 'executed', executed_at = now(),
    last_attempt_at = now(), locked_until = NULL, locked_by = NULL
WHERE id = ANY(%(ids)s) AND locked_by = %(run)s
"""


def main() -> None:
    url, out = sys.argv[1], sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    run = uuid.uuid4().hex
    start = time.perf_counter()
    conn = psycopg2.connect(url, application_name="bench-raw-loop")
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    delivered = batches = 0
    with conn.cursor() as cur:
        while True:
            cur.execute(CLAIM, {"run": run, "batch": batch})
            rows = cur.fetchall()
            conn.commit()
            if not rows:
                break
            os.write(fd, b"".join(json.dumps(
                {"id": r[0], "idempotency_key": r[0], "user_id": r[1],
                 "conversation_id": r[2], "trigger_type": r[3], "template_id": r[4],
                 "message": r[5], "scheduled_at": r[6].isoformat()},
                separators=(",", ":")).encode() + b"\n" for r in rows))
            cur.execute(MARK, {"ids": [r[0] for r in rows], "run": run})
            conn.commit()
            delivered += len(rows)
            batches += 1
    os.close(fd)
    conn.close()
    print(json.dumps({"delivered": delivered, "batches": batches,
                      "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()

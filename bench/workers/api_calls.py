"""N bookings through the Python API in one process (`FollowUps.schedule_post_event`),
each call timed; run with the interpreter of the installed followup.

    python api_calls.py DATABASE_URL N PREFIX

Prints {"walls": [...], "total": s, "statuses": {...}, "setup": s}.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter


def main() -> None:
    url, n, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    start = time.perf_counter()
    from followup_cli.api import FollowUps

    followups = FollowUps(url)
    setup = time.perf_counter() - start
    walls: list[float] = []
    statuses: Counter[str] = Counter()
    begin = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        result = followups.schedule_post_event(
            f"{prefix}u{i}", f"{prefix}c{i}", event_date="2030-06-01T18:00",
            booking_id=f"{prefix}B{i}")
        walls.append(time.perf_counter() - t)
        statuses[result["status"]] += 1
    total = time.perf_counter() - begin
    followups.close()
    print(json.dumps({"walls": walls, "total": total, "statuses": statuses,
                      "setup": setup}))


if __name__ == "__main__":
    main()

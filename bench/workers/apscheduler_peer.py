"""APScheduler 3 as a peer: a burst of date jobs in its SQLAlchemyJobStore on PostgreSQL,
each appending the same JSON line a followup delivery writes.

    python apscheduler_peer.py add DATABASE_URL N [--no-drop]   # prints {"due_at": T0, ...}
    python apscheduler_peer.py work DATABASE_URL N T0 OUT.jsonl

`add` stores N jobs all due at one instant T0, far enough ahead that storing them ends
first (it times 100 jobs to choose T0), like a 9 AM burst scheduled the day before. `work`
starts a scheduler (default executor: 10 threads) on the store and waits until every job
ran or was dropped; the drain is timed from T0 (or the scheduler's start, if later) to
the last job's end. By default APScheduler drops a job that starts more than
misfire_grace_time (1 s) late; `--no-drop` stores the jobs with misfire_grace_time=None
(the setting is stored with each job), so every job runs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

OUT: dict[str, int] = {}
JOB = "__main__:deliver"  # the job reference both processes resolve to this file


def deliver(followup_id: str, user_id: str, conversation_id: str, message: str) -> None:
    line = json.dumps({"id": followup_id, "idempotency_key": followup_id, "user_id": user_id,
                       "conversation_id": conversation_id, "trigger_type": "post_event",
                       "template_id": "post_event_neutral_emotion", "message": message},
                      separators=(",", ":")).encode() + b"\n"
    os.write(OUT["fd"], line)  # O_APPEND: one short write per line never interleaves


def store(url: str) -> SQLAlchemyJobStore:
    return SQLAlchemyJobStore(url=url.replace("postgresql://", "postgresql+psycopg2://", 1))


def add(url: str, n: int, no_drop: bool) -> None:
    defaults = {"misfire_grace_time": None} if no_drop else {}
    scheduler = BackgroundScheduler(jobstores={"default": store(url)}, timezone=UTC,
                                    job_defaults=defaults)
    scheduler.start(paused=True)
    far = datetime.now(UTC) + timedelta(days=1)
    probe = time.perf_counter()
    for i in range(100):
        scheduler.add_job(JOB, "date", run_date=far, id=f"probe-{i}",
                          args=["probe", "u", "c", "m"])
    per_job = (time.perf_counter() - probe) / 100
    scheduler.remove_all_jobs()
    due_at = datetime.now(UTC) + timedelta(seconds=1 + 3 * per_job * n)
    start = time.perf_counter()
    for i in range(1, n + 1):
        scheduler.add_job(JOB, "date", run_date=due_at, id=f"a-{i:07d}",
                          args=[f"a-{i:07d}", f"u{i}", f"c{i}",
                                f"Hello {i}, how did the event go?"])
    stored = time.perf_counter() - start
    scheduler.shutdown(wait=False)
    print(json.dumps({"due_at": due_at.timestamp(), "stored_seconds": stored,
                      "margin_left": due_at.timestamp() - time.time()}))


def work(url: str, n: int, due_at: float, out: str) -> None:
    OUT["fd"] = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    scheduler = BackgroundScheduler(jobstores={"default": store(url)}, timezone=UTC)
    counts = {"executed": 0, "missed": 0, "error": 0, "max_instances": 0}
    names = {EVENT_JOB_EXECUTED: "executed", EVENT_JOB_MISSED: "missed",
             EVENT_JOB_ERROR: "error", EVENT_JOB_MAX_INSTANCES: "max_instances"}
    done = threading.Event()
    last = [0.0]
    lock = threading.Lock()

    def seen(event: JobEvent) -> None:
        with lock:
            counts[names[event.code]] += 1
            last[0] = time.time()
            if sum(counts.values()) >= n:
                done.set()

    scheduler.add_listener(seen, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR
                           | EVENT_JOB_MAX_INSTANCES)
    started = time.time()
    scheduler.start()
    finished = done.wait(timeout=max(600.0, due_at - time.time() + 600))
    scheduler.shutdown(wait=True)
    os.close(OUT["fd"])
    print(json.dumps({**counts, "finished": finished, "late_start": started > due_at,
                      "drain_seconds": last[0] - max(due_at, started)}))


def main() -> None:
    logging.disable(logging.CRITICAL)  # one WARNING per dropped job otherwise
    mode, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "add":
        add(url, n, "--no-drop" in sys.argv[4:])
    else:
        work(url, n, float(sys.argv[4]), sys.argv[5])


if __name__ == "__main__":
    main()

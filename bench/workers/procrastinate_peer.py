"""procrastinate as a peer: N jobs deferred, then drained by one worker process.

    python procrastinate_peer.py setup DATABASE_URL N     # schema, then N jobs deferred
    python procrastinate_peer.py work DATABASE_URL N OUT.jsonl

Each job appends the same JSON line a followup delivery writes. The worker runs with
procrastinate's defaults (concurrency 1, LISTEN/NOTIFY) and wait=False, so it exits once
the queue is empty.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

import procrastinate

OUT: dict[str, int] = {}


def make_app(connector: procrastinate.connector.BaseConnector) -> procrastinate.App:
    app = procrastinate.App(connector=connector)

    @app.task(name="deliver")
    def deliver(followup_id: str, user_id: str, conversation_id: str, message: str) -> None:
        line = json.dumps({"id": followup_id, "idempotency_key": followup_id,
                           "user_id": user_id, "conversation_id": conversation_id,
                           "trigger_type": "post_event",
                           "template_id": "post_event_neutral_emotion", "message": message},
                          separators=(",", ":")).encode() + b"\n"
        os.write(OUT["fd"], line)

    return app


def setup(url: str, n: int) -> None:
    app = make_app(procrastinate.SyncPsycopgConnector(conninfo=url))
    with app.open():
        app.schema_manager.apply_schema()
        task = app.tasks["deliver"]
        start = time.perf_counter()
        for first in range(1, n + 1, 1000):
            jobs: list[dict[str, Any]] = [
                {"followup_id": f"p-{i:07d}", "user_id": f"u{i}", "conversation_id": f"c{i}",
                 "message": f"Hello {i}, how did the event go?"}
                for i in range(first, min(n, first + 999) + 1)]
            task.batch_defer(*jobs)
    print(json.dumps({"deferred": n, "defer_seconds": time.perf_counter() - start}))


def work(url: str, out: str) -> None:
    OUT["fd"] = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    app = make_app(procrastinate.PsycopgConnector(conninfo=url))
    start = time.perf_counter()
    app.run_worker(wait=False, install_signal_handlers=False)
    os.close(OUT["fd"])
    print(json.dumps({"seconds": time.perf_counter() - start}))


def main() -> None:
    logging.disable(logging.CRITICAL)
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "setup":
        setup(url, int(sys.argv[3]))
    else:
        work(url, sys.argv[4])


if __name__ == "__main__":
    main()

"""A webhook receiver that answers every POST after a fixed delay: a real threaded HTTP/1.1
server with keep-alive, counting each delivery by its `webhook-id` header.

    python receiver.py DELAY_SECONDS COUNTS.json

Prints its port on the first line of stdout, serves until its stdin closes, then writes
{"counts": {id: n}, "requests": n} to COUNTS.json and exits.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DELAY = float(sys.argv[1])
COUNTS: Counter[str] = Counter()
LOCK = threading.Lock()


class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the sender's pool reuses connections

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        delivery = self.headers.get("webhook-id") or json.loads(body)["id"]
        with LOCK:
            COUNTS[delivery] += 1
        time.sleep(DELAY)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 64 senders connecting at once must not overflow the backlog


def main() -> None:
    server = Server(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()
    with LOCK, open(sys.argv[2], "w", encoding="utf-8") as out:
        json.dump({"counts": dict(COUNTS), "requests": sum(COUNTS.values())}, out)


if __name__ == "__main__":
    main()

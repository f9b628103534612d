"""`followup serve`: read-only HTTP for monitors.

GET /api/scheduler/health answers the `health --json` document (200 when healthy or
disabled, 503 otherwise, also when the database cannot be read); GET /metrics answers the
Prometheus text that `stats --format prometheus` prints. Any other method is 405, any
other path 404.

The standard library's ThreadingHTTPServer is enough for a few monitors and a scraper: no
framework to install or keep up, nothing to import for the passes cron runs. Each request
reads in its own short read-only transaction on a connection from the engine's pool, and
every connection refuses writes (db/readonly.py): serve is meant to run as a read-only role.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from followup_cli.errors import DatabaseError, FollowupError, InputError
from followup_cli.service.context import Context
from followup_cli.settings import Settings
from followup_cli.timeutil import utcnow

log = logging.getLogger("followup.serve")

HEALTH_PATH = "/api/scheduler/health"
METRICS_PATH = "/metrics"
ALLOW = "GET"
REQUEST_TIMEOUT_S = 10  # a client that stalls mid-request does not hold a thread longer


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str


def parse_bind(text: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets, `[::1]:8000`); port 0 picks a free one."""
    raw = text.strip()
    host, sep, port_text = raw.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise InputError(f"--bind: {text!r} is not HOST:PORT (e.g. 127.0.0.1:8000 or "
                         "[::1]:8000)")
    return host, int(port_text)


def read_only_context(settings: Settings) -> Context:
    """A context whose database is never created, migrated or written."""
    from followup_cli.db.connect import sqlite_path
    from followup_cli.db.engine import Database
    from followup_cli.db.readonly import make_read_only

    url = settings.database_url
    path = sqlite_path(url)  # the file, without the URL's ?query (as every command reads it)
    if path is not None and not path.is_file():
        raise DatabaseError(f"no database at {path}: serve only reads (run a pass or "
                            "`followup db upgrade` first)")
    db = Database(url, auto_migrate=False)
    make_read_only(db)
    return Context(settings, db=db)


class MonitorApp:
    """The two answers, independent of HTTP plumbing (and so testable without it)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._last_error: str | None = None
        self._lock = threading.Lock()

    def health(self) -> Response:
        from followup_cli.service.monitoring import check_health, unreachable_report

        try:
            report = check_health(self.ctx)
            self._note(None)
        except FollowupError as error:
            self._note(error)
            report = unreachable_report(self.ctx.settings, utcnow(), error)
        body = json.dumps(report.to_json(), ensure_ascii=False) + "\n"
        return Response(HTTPStatus.OK if report.ok else HTTPStatus.SERVICE_UNAVAILABLE,
                        body.encode("utf-8"), "application/json; charset=utf-8")

    def metrics(self) -> Response:
        from followup_cli.service.metrics import (
            CONTENT_TYPE,
            collect_metrics,
            exposition,
            unavailable_exposition,
        )

        try:
            text = exposition(collect_metrics(self.ctx))
            self._note(None)
        except FollowupError as error:
            self._note(error)
            text = unavailable_exposition(self.ctx.settings, utcnow(), error)
        return Response(HTTPStatus.OK, text.encode("utf-8"), CONTENT_TYPE)

    def _note(self, error: FollowupError | None) -> None:
        # A database outage is logged when it begins and when it ends, not on every scrape.
        message = None if error is None else str(error)
        with self._lock:
            changed, self._last_error = message != self._last_error, message
        if changed and message is not None:
            log.warning("cannot read the database: %s", message)
        elif changed:
            log.warning("the database can be read again")


class _Handler(BaseHTTPRequestHandler):
    server: MonitorServer
    timeout = REQUEST_TIMEOUT_S
    server_version = "followup"
    sys_version = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        routes = {HEALTH_PATH: self.server.app.health, METRICS_PATH: self.server.app.metrics}
        route = routes.get(path)
        if route is None:
            self._send(Response(HTTPStatus.NOT_FOUND,
                                f"not found; try {HEALTH_PATH} or {METRICS_PATH}\n".encode(),
                                "text/plain; charset=utf-8"))
            return
        try:
            response = route()
        except Exception:  # a bug: answer 500 and keep serving
            log.exception("internal error answering %s", path)
            response = Response(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n",
                                "text/plain; charset=utf-8")
        self._send(response)

    def __getattr__(self, name: str) -> Any:
        # http.server looks up do_<METHOD>; every method but GET gets 405 (not 501).
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._send(Response(HTTPStatus.METHOD_NOT_ALLOWED, b"method not allowed; use GET\n",
                            "text/plain; charset=utf-8"), allow=ALLOW)

    def _send(self, response: Response, *, allow: str | None = None) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        # Access lines only with --verbose: a scrape every 15 s would flood the journal.
        log.info("%s %s", self.address_string(), format % args)


class MonitorServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str, port: int, app: MonitorApp) -> None:
        self.app = app
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), _Handler)
        except OSError as error:
            raise FollowupError(f"cannot listen on {host}:{port}: "
                                f"{error.strerror or error}") from None

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the real one when port 0 was asked)."""
        host, port = self.socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def stop(self) -> None:
        """Safe from a signal handler: shutdown() waits for serve_forever, so not here."""
        threading.Thread(target=self.shutdown, name="serve-stop", daemon=True).start()


def open_server(settings: Settings, host: str, port: int) -> MonitorServer:
    """Bind the socket (port 0: any free one); `serve_forever()` then answers."""
    return MonitorServer(host, port, MonitorApp(read_only_context(settings)))

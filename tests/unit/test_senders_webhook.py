"""The webhook sender against a real HTTP server on 127.0.0.1, verified the way a receiver
using the `standardwebhooks` library does."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from followup_cli.errors import DeliveryError
from followup_cli.service.senders import WebhookSender, build_sender, parse_retry_after
from followup_cli.settings import load_settings

SECRET_BYTES = b"followup-test-secret-0123456789"
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()
PAYLOAD = {"id": "f-1", "idempotency_key": "f-1", "user_id": "u1", "conversation_id": "c1",
           "trigger_type": "post_event", "template_id": "post_event_high_emotion",
           "message": "Grüße — thank you!", "scheduled_at": "2026-11-15T18:00:00+00:00",
           "trigger_data": {"event_date": "2026-11-14T18:00:00+00:00"}, "attempt": 1}


def soon(sender: WebhookSender) -> float:
    """The deadline the engine would give one send: now plus the sender's own."""
    return time.monotonic() + sender.deadline


class Receiver:
    """A webhook receiver: answers by path (/ok, /429, /500, /400, /slow, /date) and keeps
    every request it got."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.ports: set[int] = set()  # one per TCP connection the client opened
        self.together = threading.Barrier(4, timeout=5)
        self.lock = threading.Lock()
        self.slow_seconds = 2.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.requests.append((self.path, dict(self.headers.items()), body))
                    receiver.ports.add(self.client_address[1])
                status, headers = receiver.answer(self.path)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout case)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str) -> tuple[int, dict[str, str]]:
        if path.startswith("/429"):
            return 429, {"Retry-After": "120"}
        if path.startswith("/date"):
            return 503, {"Retry-After": formatdate(time.time() + 300, usegmt=True)}
        if path.startswith("/500"):
            return 500, {}
        if path.startswith("/400"):
            return 400, {}
        if path.startswith("/together"):
            self.together.wait()  # four requests in flight at once, or BrokenBarrierError
        if path.startswith("/slow"):
            time.sleep(self.slow_seconds)
        return 200, {}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_signed_delivery_verifies_with_standard_webhooks(receiver: Receiver) -> None:
    sender = WebhookSender(receiver.url + "/ok", secret=SECRET_BYTES, deadline=5)
    sender.send(PAYLOAD, soon(sender))
    sender.close()
    [(_, headers, body)] = receiver.requests
    assert Webhook(SECRET).verify(body, headers) == PAYLOAD
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["webhook-id"] == "f-1"
    assert lowered["idempotency-key"] == "f-1"
    assert lowered["content-type"] == "application/json"
    assert abs(int(lowered["webhook-timestamp"]) - time.time()) < 300


def test_each_sending_thread_keeps_its_own_connection(receiver: Receiver) -> None:
    """The engine sends from a thread pool: no thread waits for another's connection, and
    each reuses its own across sends (keep-alive), also after the sender was closed."""
    sender = WebhookSender(receiver.url + "/together", deadline=8)
    errors: list[BaseException] = []

    def sends() -> None:
        try:
            for _ in range(5):
                sender.send(PAYLOAD, soon(sender))
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    for round_ in range(2):
        threads = [threading.Thread(target=sends) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(receiver.requests) == 20 * (round_ + 1)
        assert len(receiver.ports) == 4 * (round_ + 1)  # closed: new connections
        sender.close()


def test_a_tampered_body_does_not_verify(receiver: Receiver) -> None:
    sender = WebhookSender(receiver.url + "/ok", secret=SECRET_BYTES, deadline=5)
    sender.send(PAYLOAD, soon(sender))
    sender.close()
    [(_, headers, body)] = receiver.requests
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(body.replace(b"u1", b"u2"), headers)


def test_unsigned_without_a_secret(receiver: Receiver) -> None:
    sender = WebhookSender(receiver.url + "/ok", deadline=5)
    sender.send(PAYLOAD, soon(sender))
    sender.close()
    [(_, headers, body)] = receiver.requests
    lowered = {k.lower() for k in headers}
    assert "webhook-signature" not in lowered and "webhook-id" in lowered
    assert json.loads(body) == PAYLOAD


@pytest.mark.parametrize(("path", "transient", "retry_after", "text"), [
    ("/429", True, 120.0, "HTTP 429"),
    ("/500", True, None, "HTTP 500"),
    ("/400", False, None, "HTTP 400"),
])
def test_status_codes(receiver: Receiver, path: str, transient: bool,
                      retry_after: float | None, text: str) -> None:
    sender = WebhookSender(receiver.url + path, secret=SECRET_BYTES, deadline=5)
    with pytest.raises(DeliveryError, match=text) as caught:
        sender.send(PAYLOAD, soon(sender))
    sender.close()
    assert caught.value.transient is transient
    assert caught.value.retry_after == retry_after


def test_retry_after_as_http_date(receiver: Receiver) -> None:
    sender = WebhookSender(receiver.url + "/date", deadline=5)
    with pytest.raises(DeliveryError) as caught:
        sender.send(PAYLOAD, soon(sender))
    sender.close()
    assert caught.value.transient
    assert caught.value.retry_after is not None and 200 < caught.value.retry_after <= 300


def test_timeout_is_transient(receiver: Receiver) -> None:
    receiver.slow_seconds = 1.5
    sender = WebhookSender(receiver.url + "/slow", deadline=0.3)
    with pytest.raises(DeliveryError, match="timed out") as caught:
        sender.send(PAYLOAD, soon(sender))
    sender.close()
    assert caught.value.transient


def test_refused_connection_is_transient() -> None:
    server = Receiver()
    url = server.url
    server.close()  # nothing listens there any more
    sender = WebhookSender(url + "/ok", deadline=2)
    with pytest.raises(DeliveryError, match="unreachable") as caught:
        sender.send(PAYLOAD, soon(sender))
    sender.close()
    assert caught.value.transient


def test_error_messages_never_carry_the_message(receiver: Receiver) -> None:
    sender = WebhookSender(receiver.url + "/400", deadline=5)
    with pytest.raises(DeliveryError) as caught:
        sender.send(PAYLOAD, soon(sender))
    sender.close()
    assert "thank you" not in str(caught.value)


def test_build_sender_reads_the_settings() -> None:
    settings = load_settings({"DATABASE_URL": "sqlite:///x.db",
                              "FOLLOWUP_SENDER": "webhook:https://example.com/hook",
                              "FOLLOWUP_WEBHOOK_SECRET": SECRET,
                              "FOLLOWUP_LEASE_SECONDS": "10"})
    sender = build_sender(settings)
    assert isinstance(sender, WebhookSender)
    assert sender.secret == SECRET_BYTES
    assert sender.deadline == 2.5  # never more than a quarter of the lease


@pytest.mark.parametrize(("raw", "expected"), [
    ("120", 120.0), ("0", 0.0), (None, None), ("", None), ("soon", None), ("-5", None)])
def test_parse_retry_after_seconds(raw: str | None, expected: float | None) -> None:
    assert parse_retry_after(raw) == expected


def test_parse_retry_after_date_in_the_past_is_zero() -> None:
    assert parse_retry_after(formatdate(time.time() - 60, usegmt=True)) == 0.0


class Misbehaving:
    """A raw TCP receiver that misbehaves on purpose, the way a hostile network does:
    `headers` trickles its status line and headers a byte at a time; `body` answers 200 at
    once, then trickles the body; `huge` answers 200 with a 1.5 GB body sent as fast as
    the socket takes it. `sent` counts the bytes it managed to send."""

    def __init__(self, mode: str, interval: float = 0.3) -> None:
        import socket

        self.mode, self.interval, self.sent = mode, interval, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            try:
                if self.mode == "headers":
                    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                        if self.stop.wait(self.interval):
                            return
                        self.sent += conn.send(bytes([byte]))
                elif self.mode == "body":
                    self.sent += conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                    while not self.stop.wait(self.interval):
                        self.sent += conn.send(b"x")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1500000000\r\n\r\n")
                    block = b"\0" * 65536
                    while self.sent < 1_500_000_000 and not self.stop.is_set():
                        self.sent += conn.send(block)
            except OSError:
                pass  # the client hung up: what we want it to do

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(timeout=5)


def test_trickled_headers_cannot_stretch_a_send_past_its_deadline() -> None:
    """Issue 8 problem 1: each read waited its own timeout, so a receiver sending a byte
    every few seconds kept one send alive for 19-25 s against a 10 s lease. The deadline
    now bounds the whole send."""
    server = Misbehaving("headers")
    sender = WebhookSender(server.url, deadline=1.0)
    began = time.monotonic()
    try:
        with pytest.raises(DeliveryError, match="timed out") as caught:
            sender.send(PAYLOAD, soon(sender))
    finally:
        elapsed = time.monotonic() - began
        sender.close()
        server.close()
    assert caught.value.transient
    assert elapsed < 2.5


def test_a_trickled_body_after_200_is_delivered_within_the_deadline() -> None:
    server = Misbehaving("body")
    sender = WebhookSender(server.url, deadline=1.0)
    began = time.monotonic()
    try:
        sender.send(PAYLOAD, soon(sender))  # the status decides: delivered
    finally:
        elapsed = time.monotonic() - began
        sender.close()
        server.close()
    assert elapsed < 2.5


def test_a_huge_answer_is_read_to_64_kib_at_most() -> None:
    """Issue 8 problem 8: a 1.5 GB response body was read whole (3 GB of memory)."""
    server = Misbehaving("huge")
    sender = WebhookSender(server.url, deadline=5.0)
    try:
        sender.send(PAYLOAD, soon(sender))
    finally:
        sender.close()
        time.sleep(0.2)
        server.close()
    # what the kernel buffers on both sides plus 64 KiB, far from 1.5 GB
    assert server.sent < 32 * 1024 * 1024

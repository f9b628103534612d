"""Delivery channels (FOLLOWUP_SENDER): log, file:PATH, webhook:URL, command:CMD.

A sender delivers payloads or raises DeliveryError(transient=...). Every send has one total
deadline (a `time.monotonic()` instant the engine passes in): connect, headers and body
together for a webhook, the whole run of a command. The engine relies on it to never let a
send outlive the lease that protects it. Local senders (log, file, memory) deliver a whole
batch at once (`send_many`), so a fast pass makes one write per batch, not per follow-up.

Senders may be called from a thread pool, so each is safe to share between threads. The
HTTP client is imported only by the webhook sender: an idle cron pass must not pay for
what it does not use.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from followup_cli.errors import DeliveryError, SettingsError

if TYPE_CHECKING:
    import httpcore

    from followup_cli.settings import Settings

WEBHOOK_DEADLINE = 10.0
COMMAND_DEADLINE = 30.0
MAX_RESPONSE_BODY = 64 * 1024  # bytes of a webhook answer read at most
ERROR_LIMIT = 300  # characters of a receiver's or command's error kept in error_message


class Sender(Protocol):
    # The longest one send may take, in seconds; the engine never gives one less.
    deadline: float

    def send(self, payload: dict[str, Any], deadline_at: float) -> None: ...


class BatchSender(Sender, Protocol):
    def send_many(self, payloads: Sequence[dict[str, Any]]) -> list[DeliveryError | None]: ...


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes every channel sends: compact JSON, UTF-8."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"),
                      default=str).encode("utf-8")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_LIMIT else text[:ERROR_LIMIT - 1] + "…"


def is_batch(sender: Sender) -> bool:
    return callable(getattr(sender, "send_many", None))


class MemorySender:
    """Collects payloads in memory (tests, `followup demo`). `fail` maps a follow-up id to
    the DeliveryError to raise for it instead."""

    deadline = 1.0

    def __init__(self, fail: dict[str, DeliveryError] | None = None) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.fail = dict(fail or {})
        self._lock = threading.Lock()

    def send_many(self, payloads: Sequence[dict[str, Any]]) -> list[DeliveryError | None]:
        outcomes: list[DeliveryError | None] = []
        with self._lock:
            for payload in payloads:
                error = self.fail.get(str(payload.get("id")))
                if error is None:
                    self.payloads.append(payload)
                outcomes.append(error)
        return outcomes

    def send(self, payload: dict[str, Any], deadline_at: float) -> None:
        error = self.send_many([payload])[0]
        if error is not None:
            raise error


class LogSender(MemorySender):
    """FOLLOWUP_SENDER=log, a channel for trying followup out: each delivery's JSON goes to
    `stream` (the CLI gives stdout) as one line, or, with no stream (`--json`), is collected
    for the pass's result document. This is delivery, not logging."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream

    def send_many(self, payloads: Sequence[dict[str, Any]]) -> list[DeliveryError | None]:
        if self.stream is None:
            return super().send_many(payloads)
        with self._lock:
            self.stream.write("".join(encode(p).decode("utf-8") + "\n" for p in payloads))
            self.stream.flush()
        return [None] * len(payloads)


class FileSender:
    """file:PATH — one JSON line per delivery, appended (O_APPEND, file created 0600).

    A batch is one write under an exclusive flock, so lines of concurrent passes never
    interleave. Every line stays a whole JSON document: after a short write (a full disk,
    a file size limit) the file is truncated back to where the batch began and the batch is
    a retryable failure."""

    deadline = 1.0  # not enforceable on a local disk; used to size claims

    def __init__(self, path: str) -> None:
        self.path = os.path.expanduser(path)
        self._fd: int | None = None
        self._lock = threading.Lock()

    def _open(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as error:
                raise DeliveryError(f"cannot open {self.path}: {error.strerror}",
                                    transient=True) from None
        return self._fd

    def send_many(self, payloads: Sequence[dict[str, Any]]) -> list[DeliveryError | None]:
        import fcntl

        data = b"".join(encode(p) + b"\n" for p in payloads)
        with self._lock:
            try:
                fd = self._open()
            except DeliveryError as cannot_open:
                return [cannot_open] * len(payloads)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                start = os.fstat(fd).st_size
                failure = self._write_all(fd, data)
                if failure is not None:
                    os.ftruncate(fd, start)  # whole lines only: drop the partial batch
                    return [failure] * len(payloads)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        return [None] * len(payloads)

    def _write_all(self, fd: int, data: bytes) -> DeliveryError | None:
        done = 0
        while done < len(data):
            try:
                written = os.write(fd, data[done:])
            except OSError as error:
                return DeliveryError(
                    f"cannot write {self.path}: {error.strerror} ({done} of {len(data)} "
                    "bytes written, then removed)", transient=True)
            if written == 0:
                break
            done += written
        if done < len(data):
            return DeliveryError(f"short write to {self.path} ({done} of {len(data)} bytes, "
                                 "then removed)", transient=True)
        return None

    def send(self, payload: dict[str, Any], deadline_at: float) -> None:
        error = self.send_many([payload])[0]
        if error is not None:
            raise error

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def sign(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks signature of the exact body bytes: v1,<base64 HMAC-SHA256>."""
    import base64
    import hashlib
    import hmac

    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None if unusable."""
    from email.utils import parsedate_to_datetime

    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class WebhookSender:
    """webhook:URL — POST the JSON; 2xx delivered, 429/5xx/network errors/timeouts
    transient (Retry-After kept), any other status permanent.

    Built on httpcore (httpx's own transport) with a network backend that bounds every
    connect, TLS handshake, read and write by what is left of the send's deadline, so a
    receiver trickling its headers or body cannot stretch a send past it; a per-read
    timeout alone cannot promise that. The answer's body is read to at most 64 KiB."""

    def __init__(self, url: str, *, secret: bytes | None = None,
                 deadline: float = WEBHOOK_DEADLINE) -> None:
        self.url = url
        self.secret = secret
        self.deadline = deadline
        self._deadline = _ThreadDeadline()
        self._mine = _ThreadPool()
        self._pools: list[httpcore.ConnectionPool] = []
        self._generation = 0  # bumped by close(): a thread's older pool is not reused
        self._lock = threading.Lock()

    def _http(self) -> httpcore.ConnectionPool:
        """The calling thread's own keep-alive connection. One pool per sending thread, not
        one pool shared by all: at 64 threads a shared pool's bookkeeping (a scan of every
        connection and an idle check per request, under one lock) took more than half the
        pass's time, and a thread never needs a second connection."""
        mine = self._mine
        pool: httpcore.ConnectionPool | None = mine.pool
        if pool is None or mine.generation != self._generation:
            import httpcore

            pool = httpcore.ConnectionPool(
                max_connections=1, max_keepalive_connections=1, keepalive_expiry=30.0,
                proxy=_proxy_for(self.url), network_backend=_deadline_backend(self._deadline))
            with self._lock:
                self._pools.append(pool)
                mine.pool, mine.generation = pool, self._generation
        return pool

    def send(self, payload: dict[str, Any], deadline_at: float) -> None:
        import httpcore

        pool = self._http()
        msg_id = str(payload["id"])
        body = encode(payload)
        headers = [(b"content-type", b"application/json"), (b"user-agent", b"followup"),
                   (b"webhook-id", msg_id.encode()), (b"idempotency-key", msg_id.encode())]
        if self.secret is not None:
            # Wall-clock time, not the pass clock: receivers check it against their own.
            timestamp = int(time.time())
            headers += [(b"webhook-timestamp", str(timestamp).encode()),
                        (b"webhook-signature", sign(self.secret, msg_id, timestamp,
                                                    body).encode())]
        self._deadline.at = deadline_at
        status, retry_after, reason = 0, None, ""
        try:
            with pool.stream("POST", self.url, headers=headers, content=body) as response:
                status = response.status
                reason = response.extensions.get("reason_phrase", b"").decode("latin-1")
                retry_after = _header(response.headers, b"retry-after")
                self._drain(response)
        except httpcore.TimeoutException:
            if not status:
                raise DeliveryError(
                    f"webhook timed out: no answer within {self.deadline:g} s (the whole "
                    "send: connect, headers, body)", transient=True) from None
            # The status line is in: the outcome is decided; only the body was slow.
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.ProxyError,
                httpcore.UnsupportedProtocol) as error:
            if not status:
                detail = _short(str(error)) or type(error).__name__
                raise DeliveryError(f"webhook unreachable: {detail}", transient=True) from None
        finally:
            self._deadline.at = None
        if 200 <= status < 300:
            return
        text = f"webhook answered HTTP {status} {reason}".rstrip()
        if status == 429 or status >= 500:
            raise DeliveryError(text, transient=True, retry_after=parse_retry_after(retry_after))
        raise DeliveryError(text, transient=False)

    @staticmethod
    def _drain(response: Any) -> None:
        """Read the answer to at most MAX_RESPONSE_BODY bytes (a complete small body keeps
        the connection for the next send; a larger one is cut off with the connection)."""
        read = 0
        for chunk in response.iter_stream():
            read += len(chunk)
            if read >= MAX_RESPONSE_BODY:
                break

    def close(self) -> None:
        with self._lock:
            pools, self._pools = self._pools, []
            self._generation += 1
        for pool in pools:
            pool.close()


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _proxy_for(url: str) -> Any:
    """The proxy the environment names for this URL (HTTPS_PROXY, NO_PROXY, ...), if any."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    import httpcore

    return httpcore.Proxy(proxy)


class _ThreadPool(threading.local):
    pool: Any = None
    generation = -1


class _ThreadDeadline(threading.local):
    at: float | None = None


def _deadline_backend(deadline: _ThreadDeadline) -> Any:
    """An httpcore network backend whose every socket operation waits at most until the
    calling thread's deadline (a public httpcore extension point)."""
    import httpcore

    def left(timeout: float | None, expired: type[Exception]) -> float | None:
        if deadline.at is None:
            return timeout
        remaining = deadline.at - time.monotonic()
        if remaining <= 0:
            raise expired("the send's deadline has passed")
        return remaining if timeout is None else min(timeout, remaining)

    class Stream(httpcore.NetworkStream):
        def __init__(self, stream: httpcore.NetworkStream) -> None:
            self._stream = stream

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._stream.read(max_bytes, left(timeout, httpcore.ReadTimeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._stream.write(buffer, left(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self._stream.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                      timeout: float | None = None) -> httpcore.NetworkStream:
            return Stream(self._stream.start_tls(
                ssl_context, server_hostname, left(timeout, httpcore.ConnectTimeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._stream.get_extra_info(info)

    class Backend(httpcore.NetworkBackend):
        def __init__(self) -> None:
            self._backend = httpcore.SyncBackend()

        def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                        local_address: str | None = None,
                        socket_options: Any = None) -> httpcore.NetworkStream:
            return Stream(self._backend.connect_tcp(
                host, port, left(timeout, httpcore.ConnectTimeout), local_address,
                socket_options))

        def connect_unix_socket(self, path: str, timeout: float | None = None,
                                socket_options: Any = None) -> httpcore.NetworkStream:
            return Stream(self._backend.connect_unix_socket(
                path, left(timeout, httpcore.ConnectTimeout), socket_options))

        def sleep(self, seconds: float) -> None:
            self._backend.sleep(seconds)

    return Backend()


class CommandSender:
    """command:CMD — run CMD (split like a shell would, but no shell) with the JSON on
    stdin; exit 0 is delivered, anything else (or the deadline) is retried.

    The command is done when it exits: its output goes to a file, not a pipe, so a
    background child it leaves behind (`... &`) cannot hold the send. A command that
    outlives the deadline is killed with its whole process group."""

    def __init__(self, command: str, *, deadline: float = COMMAND_DEADLINE) -> None:
        import shlex

        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("empty command")
        self.deadline = deadline

    def send(self, payload: dict[str, Any], deadline_at: float) -> None:
        import signal
        import subprocess
        import tempfile

        timeout = max(0.0, deadline_at - time.monotonic())
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=errors,
                                        start_new_session=True)
            except OSError as error:
                raise DeliveryError(f"cannot run {self.argv[0]}: {error.strerror}",
                                    transient=True) from None
            try:
                proc.communicate(encode(payload), timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise DeliveryError(f"command did not finish within {self.deadline:g} s",
                                    transient=True) from None
            if proc.returncode != 0:
                errors.seek(0)
                tail = errors.read()[-4096:].decode("utf-8", "replace").strip().splitlines()
                detail = f": {_short(tail[-1])}" if tail else ""
                raise DeliveryError(f"command exited with {proc.returncode}{detail}",
                                    transient=True)


def build_sender(settings: Settings, *, log_stream: TextIO | None = None) -> Sender:
    """The sender named by FOLLOWUP_SENDER. A send's deadline is at most a quarter of the
    lease, so the pass's lease renewals always stay ahead of any send in flight."""
    spec = settings.require_sender()
    ceiling = max(1.0, settings.lease_seconds / 4)
    if spec == "log":
        return LogSender(log_stream)
    kind, _, target = spec.partition(":")
    if kind == "file":
        return FileSender(target)
    if kind == "webhook":
        return WebhookSender(target, secret=settings.webhook_secret,
                             deadline=min(WEBHOOK_DEADLINE, ceiling))
    if kind == "command":
        try:
            return CommandSender(target, deadline=min(COMMAND_DEADLINE, ceiling))
        except ValueError as error:  # unbalanced quotes
            raise SettingsError(f"FOLLOWUP_SENDER: cannot split the command: {error}") from None
    raise ValueError(f"unknown sender {spec!r}")  # parse_sender already refused it


def close_sender(sender: Sender) -> None:
    close = getattr(sender, "close", None)
    if callable(close):
        close()

"""Delivery channels (FOLLOWUP_SENDER): log, file:PATH, webhook:URL, command:CMD.

A sender delivers one payload or raises DeliveryError(transient=...). Senders are called
from a thread pool, so each is safe to share between threads. httpx is imported only by
the webhook sender, and the other channels' modules by their senders: an idle cron pass
must not pay for what it does not use.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from followup_cli.errors import DeliveryError, SettingsError

if TYPE_CHECKING:
    import httpx

    from followup_cli.settings import Settings

WEBHOOK_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0
# log and file: what one send is expected to take, for sizing claims to the lease. Not
# enforced (a stuck disk cannot be timed out); the pass's send cutoff still protects the lease.
LOCAL_TIMEOUT = 0.5
ERROR_LIMIT = 300  # characters of a receiver's or command's error kept in error_message


class Sender(Protocol):
    def send(self, payload: dict[str, Any]) -> None: ...


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes every channel sends: compact JSON, UTF-8."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"),
                      default=str).encode("utf-8")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_LIMIT else text[:ERROR_LIMIT - 1] + "…"


class MemorySender:
    """Collects payloads in memory (tests, `followup demo`). `fail` maps a follow-up id to
    the DeliveryError to raise for it instead."""

    timeout = LOCAL_TIMEOUT

    def __init__(self, fail: dict[str, DeliveryError] | None = None) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.fail = dict(fail or {})
        self._lock = threading.Lock()

    def send(self, payload: dict[str, Any]) -> None:
        error = self.fail.get(str(payload.get("id")))
        if error is not None:
            raise error
        with self._lock:
            self.payloads.append(payload)


class LogSender(MemorySender):
    """FOLLOWUP_SENDER=log: the pass returns the payloads and the CLI prints them on stdout
    (a delivery channel for trying followup out, not logging)."""

    prints_deliveries = True


class FileSender:
    """file:PATH — one JSON line per delivery, appended with a single os.write on an
    O_APPEND descriptor, so lines from concurrent passes never interleave."""

    timeout = LOCAL_TIMEOUT

    def __init__(self, path: str) -> None:
        self.path = os.path.expanduser(path)
        self._fd: int | None = None
        self._lock = threading.Lock()

    def _open(self) -> int:
        with self._lock:
            if self._fd is None:
                try:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                except OSError as error:
                    raise DeliveryError(f"cannot open {self.path}: {error.strerror}",
                                        transient=True) from None
            return self._fd

    def send(self, payload: dict[str, Any]) -> None:
        line = encode(payload) + b"\n"
        fd = self._open()
        try:
            written = os.write(fd, line)
        except OSError as error:
            raise DeliveryError(f"cannot write {self.path}: {error.strerror}",
                                transient=True) from None
        if written != len(line):  # a full disk; the partial line is the receiver's to skip
            raise DeliveryError(f"short write to {self.path} ({written} of {len(line)} bytes)",
                                transient=True)

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
    transient (Retry-After kept), any other status permanent."""

    def __init__(self, url: str, *, secret: bytes | None = None,
                 timeout: float = WEBHOOK_TIMEOUT) -> None:
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.timeout), follow_redirects=False,
                    headers={"user-agent": "followup"})
            return self._client

    def send(self, payload: dict[str, Any]) -> None:
        import httpx

        client = self._http()
        msg_id = str(payload["id"])
        body = encode(payload)
        headers = {"content-type": "application/json", "webhook-id": msg_id,
                   "idempotency-key": msg_id}
        if self.secret is not None:
            # Wall-clock time, not the pass clock: receivers check it against their own.
            timestamp = int(time.time())
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = sign(self.secret, msg_id, timestamp, body)
        try:
            response = client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise DeliveryError(f"webhook timed out after {self.timeout:g} s",
                                transient=True) from None
        except httpx.HTTPError as error:
            detail = _short(str(error)) or type(error).__name__
            raise DeliveryError(f"webhook unreachable: {detail}", transient=True) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        reason = f"webhook answered HTTP {status} {response.reason_phrase}".rstrip()
        if status == 429 or status >= 500:
            raise DeliveryError(reason, transient=True,
                                retry_after=parse_retry_after(response.headers.get("retry-after")))
        raise DeliveryError(reason, transient=False)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class CommandSender:
    """command:CMD — run CMD (split like a shell would, but no shell) with the JSON on
    stdin; exit 0 is delivered, anything else (or the timeout) is retried."""

    def __init__(self, command: str, *, timeout: float = COMMAND_TIMEOUT) -> None:
        import shlex

        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("empty command")
        self.timeout = timeout

    def send(self, payload: dict[str, Any]) -> None:
        import subprocess

        try:
            done = subprocess.run(self.argv, input=encode(payload), capture_output=True,
                                  timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise DeliveryError(f"command timed out after {self.timeout:g} s",
                                transient=True) from None
        except OSError as error:
            raise DeliveryError(f"cannot run {self.argv[0]}: {error.strerror}",
                                transient=True) from None
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = f": {_short(tail[-1])}" if tail else ""
            raise DeliveryError(f"command exited with {done.returncode}{detail}",
                                transient=True)


def build_sender(settings: Settings) -> Sender:
    """The sender named by FOLLOWUP_SENDER. A send never outlives half the lease, so a
    slow receiver cannot make a live pass lose its claim."""
    spec = settings.require_sender()
    ceiling = max(1.0, settings.lease_seconds / 2)
    if spec == "log":
        return LogSender()
    kind, _, target = spec.partition(":")
    if kind == "file":
        return FileSender(target)
    if kind == "webhook":
        return WebhookSender(target, secret=settings.webhook_secret,
                             timeout=min(WEBHOOK_TIMEOUT, ceiling))
    if kind == "command":
        try:
            return CommandSender(target, timeout=min(COMMAND_TIMEOUT, ceiling))
        except ValueError as error:  # unbalanced quotes
            raise SettingsError(f"FOLLOWUP_SENDER: cannot split the command: {error}") from None
    raise ValueError(f"unknown sender {spec!r}")  # parse_sender already refused it


def send_timeout(sender: Sender) -> float:
    """The longest one send may take: senders without a `timeout` are assumed local."""
    value = getattr(sender, "timeout", None)
    return float(value) if isinstance(value, int | float) and value > 0 else LOCAL_TIMEOUT


def close_sender(sender: Sender) -> None:
    close = getattr(sender, "close", None)
    if callable(close):
        close()

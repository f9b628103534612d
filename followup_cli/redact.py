"""Keeping secrets out of what followup prints: database passwords, webhook tokens and
secrets, encryption keys.

Two layers:
- By construction: a database URL is shown as `display_url(url)` (the plain `postgresql://`
  form psql accepts, password masked) and a sender as `sender_display(spec)` (a webhook URL
  without its query string or user part).
- As a backstop at the output edge: `scrub(text)` masks every URL password and
  `password=` value it finds in any text, and every secret of the settings in force that it
  was told about (`remember_environment`), even where a driver quotes a fragment of a
  mis-parsed URL. The CLI runs every command's stderr (log lines, tracebacks, error lines)
  and its error documents through it.

The password of a URL ends at its LAST `@`: libpq and SQLAlchemy disagree on unescaped
`@`, `/`, `?` and `#` inside a password, and masking too much is better than too little.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any, TextIO
from urllib.parse import unquote

MASK = "***"
MIN_SECRET = 4  # shorter values are only masked where they stand (a URL, password=)
# Query parameters and DSN keys whose value is a secret.
SECRET_NAME = r"[A-Za-z_]*(?:password|secret|token)[A-Za-z_]*"
_QUERY_SECRET = re.compile(rf"(?i)([?&;]{SECRET_NAME}=)[^&]*")
_DSN_SECRET = re.compile(
    rf"(?i)(?<![\w?&;])({SECRET_NAME}\s*=\s*)('(?:[^'\\]|\\.)*(?:'|$)|\S*)")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]*")
_MASKED = r"\g<1>" + MASK
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_PG_SCHEME = re.compile(r"(?i)^(?:postgresql|postgres)(?:\+[A-Za-z0-9_]+)?$")


def _split_userinfo(rest: str) -> tuple[str, str, str] | None:
    """(user, password, rest from the '@' on) of what follows `scheme://`, or None when
    there is no password. The password runs to the last '@' (see the module doc)."""
    at = rest.rfind("@")
    if at < 0:
        return None
    user, colon, password = rest[:at].partition(":")
    if not colon or "/" in user:  # no password; or '@' and ':' of a path or query
        return None
    return user, password, rest[at:]


def without_userinfo(url: str) -> str:
    """`url` without its user part (and so without any password in it)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    parts = _split_userinfo(rest)
    if parts is not None:
        return f"{scheme}://{parts[2][1:]}"
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:  # a user without a password
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return url


def mask_url(url: str) -> str:
    """`url` with its password (user part, `password=`, `sslpassword=`, any
    `...token=`/`...secret=` parameter) masked; a string without `://` is read as a
    libpq key-value DSN (`host=h password=p`)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return mask_dsn(url)
    parts = _split_userinfo(rest)
    if parts is not None:
        user, _, tail = parts
        rest = f"{user}:{MASK}{tail}"
    return f"{scheme}://{_QUERY_SECRET.sub(_MASKED, rest)}"


def mask_dsn(text: str) -> str:
    """A libpq key-value DSN (or any text) with `password=...` values masked, quoted ones
    (`password='a b'`) included."""
    return _DSN_SECRET.sub(_MASKED, text)


def display_url(url: str) -> str:
    """A database URL as shown to people: PostgreSQL in the plain `postgresql://` form that
    psql and pg_dump accept (whatever driver suffix it was given with), secrets masked."""
    scheme, sep, rest = url.partition("://")
    if sep and _PG_SCHEME.match(scheme):
        url = f"postgresql://{rest}"
    return mask_url(url)


def sender_display(spec: str) -> str:
    """FOLLOWUP_SENDER as shown to people: a webhook URL without its user part and query
    string (tokens live there), a command without its arguments; log and file as given."""
    kind, sep, target = spec.partition(":")
    if not sep:
        return spec
    if kind == "webhook":
        scheme, sep2, rest = target.partition("://")
        if not sep2:
            return f"webhook:{MASK}"
        rest = without_userinfo(target).partition("://")[2]
        rest = re.split(r"[?#]", rest, maxsplit=1)[0]
        return f"webhook:{scheme}://{rest}"
    if kind == "command":
        words = target.split()
        return f"command:{words[0]}" + (" …" if len(words) > 1 else "") if words else spec
    return spec


# --- the backstop -------------------------------------------------------------------------

def _url_secrets(url: str) -> set[str]:
    """Every string of `url` that could be (part of) a secret, as each parser reads it."""
    found: set[str] = set()
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        for match in _DSN_SECRET.finditer(url):
            found.add(match.group(2).strip("'"))
        return found
    parts = _split_userinfo(rest)
    if parts is not None:
        password = parts[1]
        # SQLAlchemy ends the password at the first '@' and takes the rest for the host,
        # which then shows up in "could not translate host name" errors.
        found.update([password, *password.split("@")])
    query = rest.partition("?")[2]
    for match in _QUERY_SECRET.finditer("?" + query):
        found.add(match.group(0).split("=", 1)[1])
    return found


def _sender_secrets(spec: str) -> set[str]:
    _kind, _, target = spec.partition(":")
    if "://" not in target:  # log, file:PATH, command:CMD (keep secrets out of argv)
        return set()
    found = _url_secrets(target)
    parts = re.split(r"[?#]", target.partition("://")[2], maxsplit=1)
    query = parts[1] if len(parts) > 1 else ""
    if query:
        found.add(query)
        found.update(value for pair in re.split(r"[&;#]", query)
                     for value in [pair.partition("=")[2] or pair])
    return found


class Redactor:
    """Masks URL passwords anywhere in a text, and every secret it was told about."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._ordered: list[str] = []
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        with self._lock:
            for value in values:
                for variant in (value, None if value is None else unquote(value)):
                    if variant and len(variant.strip()) >= MIN_SECRET:
                        self._secrets.add(variant.strip())
            self._ordered = sorted(self._secrets, key=len, reverse=True)

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._ordered = []

    def scrub(self, text: str) -> str:
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, MASK)
        return mask_dsn(_URL.sub(lambda m: mask_url(m.group(0)), text))

    def remember_environment(self, environ: Mapping[str, str],
                             overrides: Mapping[str, str | None] | None = None) -> None:
        """Learn the secrets of the settings in force: the environment, and command-line
        overrides (`--database-url`, `--sender`) on top."""
        env = dict(environ)
        env.update({k: v for k, v in (overrides or {}).items() if v is not None})
        found: set[str] = set()
        if url := env.get("DATABASE_URL", "").strip():
            found |= _url_secrets(url)
        if sender := env.get("FOLLOWUP_SENDER", "").strip():
            found |= _sender_secrets(sender)
        if secret := env.get("FOLLOWUP_WEBHOOK_SECRET", "").strip():
            found |= {secret, secret.removeprefix("whsec_")}
        if keys := env.get("FOLLOWUP_ENCRYPTION_KEY", "").strip():
            found |= {keys, *(k.strip() for k in keys.split(","))}
        self.add(*found)


REDACTOR = Redactor()


def scrub(text: str) -> str:
    """`text` with every secret followup knows of masked (see Redactor)."""
    return REDACTOR.scrub(text)


def remember_environment(environ: Mapping[str, str],
                         overrides: Mapping[str, str | None] | None = None) -> None:
    REDACTOR.remember_environment(environ, overrides)


class RedactingStream:
    """A text stream that scrubs what is written to it (anything else passes through)."""

    def __init__(self, stream: TextIO) -> None:
        self.wrapped = stream

    def write(self, text: Any) -> int:
        if isinstance(text, str):
            text = scrub(text)
        return int(self.wrapped.write(text) or 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


@contextlib.contextmanager
def redacting_stderr() -> Iterator[None]:
    """Scrub everything written to stderr meanwhile: log lines, tracebacks, error lines."""
    original = sys.stderr
    if isinstance(original, RedactingStream):
        yield
        return
    sys.stderr = RedactingStream(original)
    try:
        yield
    finally:
        sys.stderr = original


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Logs to whatever sys.stderr is when a record is written (so the redacting wrapper
    and test runners' captures see it), each record scrubbed."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))

"""How followup opens its databases, shared by the engine and the idle fast path.

No SQLAlchemy here: the idle `run-due` pass connects with the raw driver through these
same functions, so both paths treat DATABASE_URL alike.

PostgreSQL: the operator's own settings win. followup adds `application_name`,
`connect_timeout` and, inside `options`, `-c statement_timeout` and `-c lock_timeout`, each
only when neither the URL nor libpq's environment (PGAPPNAME, PGCONNECT_TIMEOUT, PGOPTIONS)
already sets it; whatever else `options` carries (`-c search_path=...`) is kept as written.

SQLite: a file followup creates is readable by its owner only (0600; SQLite gives its -wal
and -shm files the same mode), and so is every directory it creates for one (0700). A
caller that must not create anything (a read-only command at an explicit DATABASE_URL)
gets an error naming the missing file instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from followup_cli.db import CONNECT_TIMEOUT_S, LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS
from followup_cli.errors import DatabaseError

APPLICATION_NAME = "followup"

# libpq's environment fallback for each parameter we may set.
_ENV_FALLBACK = {"application_name": "PGAPPNAME", "connect_timeout": "PGCONNECT_TIMEOUT",
                 "options": "PGOPTIONS"}


def url_parameters(url: str) -> dict[str, str]:
    """The query parameters of a postgresql:// URL (percent-decoded; the last one wins,
    as in libpq)."""
    query = urlsplit(url).query
    return {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}


def split_options(options: str) -> list[str]:
    """libpq's split of `options`: whitespace separates arguments, a backslash escapes the
    next character."""
    args: list[str] = []
    current: list[str] = []
    escaped = False
    for char in options:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char.isspace():
            if current:
                args.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        args.append("".join(current))
    return args


def option_settings(options: str) -> dict[str, str]:
    """The server settings an `options` string sets: `-c name=value`, `-cname=value` and
    `--name=value` (where the server reads dashes in the name as underscores)."""
    found: dict[str, str] = {}
    args = split_options(options)
    i = 0
    while i < len(args):
        arg = args[i]
        assignment: str | None = None
        if arg == "-c" and i + 1 < len(args):
            assignment = args[i + 1]
            i += 1
        elif arg.startswith("-c") and len(arg) > 2:
            assignment = arg[2:]
        elif arg.startswith("--") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            assignment = name.replace("-", "_") + "=" + value
        if assignment and "=" in assignment:
            name, value = assignment.split("=", 1)
            found[name.strip().lower()] = value
        i += 1
    return found


ISOLATION = "default_transaction_isolation"
READ_COMMITTED = "read committed"


def pg_connect_params(url: str, *, environ: Mapping[str, str] | None = None,
                      statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
                      lock_timeout_ms: int = LOCK_TIMEOUT_MS,
                      connect_timeout_s: int = CONNECT_TIMEOUT_S) -> dict[str, str | int]:
    """Keyword arguments for psycopg2.connect (or SQLAlchemy's connect_args) on top of
    `url`: only what the operator left unset, and `options` with the URL's own settings
    kept and ours appended."""
    env = os.environ if environ is None else environ
    given = url_parameters(url)

    def operator_set(name: str) -> bool:
        return name in given or bool(env.get(_ENV_FALLBACK[name]))

    params: dict[str, str | int] = {}
    if not operator_set("application_name"):
        params["application_name"] = APPLICATION_NAME
    if not operator_set("connect_timeout"):
        params["connect_timeout"] = connect_timeout_s
    options = given["options"] if "options" in given else env.get("PGOPTIONS", "")
    present = option_settings(options)
    additions = [f"-c {name}={value}" for name, value in (
        ("statement_timeout", statement_timeout_ms), ("lock_timeout", lock_timeout_ms))
        if name not in present]
    # Not the operator's to choose: every rule that spans rows (a user's guard row, the
    # duplicate window, the cap, SKIP LOCKED claims) is written for READ COMMITTED, where
    # each statement sees what committed before it, the wait for a guard included. Under
    # a database's or role's default of REPEATABLE READ two bookings of one user both
    # passed the duplicate check. Startup options win over those defaults.
    if present.get(ISOLATION, "").lower() != READ_COMMITTED:
        additions.append(rf"-c {ISOLATION}=read\ committed")  # libpq: an escaped space
    if additions:
        params["options"] = " ".join([options.strip(), *additions]).strip()
    return params


def rolled_back(conn: Any) -> bool:
    """End whatever a DB-API connection has open; False if it cannot be (it broke)."""
    try:
        conn.rollback()
    except Exception:
        return False
    return not conn.closed


def pg_dsn(url: str) -> str:
    """The URL as libpq reads it (the SQLAlchemy driver suffix dropped)."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


# A URL whose every part is made of characters libpq's URI parser and SQLAlchemy's URL
# parser read alike (unreserved ones and %-escapes; no query `host` or `port`, which
# SQLAlchemy turns into multi-host lists). Only such a URL is given to libpq directly by
# the raw paths (the idle probe, a booking, health): anything else, an unescaped `?`, `#`,
# `/` or `@` in a password for one, goes through SQLAlchemy, so that it is read one way
# only and its errors are worded (and masked) the same everywhere.
_PART = r"(?:[A-Za-z0-9._~-]|%(?!00)[0-7][0-9A-Fa-f])"  # escapes of ASCII only: %aa alone
# is no UTF-8 (SQLAlchemy reads U+FFFD, libpq hands psycopg2 a byte it cannot decode)
_PLAIN_PG_URL = re.compile(
    rf"postgresql(?:\+psycopg2)?://"
    rf"(?:{_PART}+(?::{_PART}*)?@)?"
    rf"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])?(?::[1-9][0-9]*)?"
    rf"(?:/{_PART}*)?"
    rf"(?:\?{_PART}+={_PART}+(?:&{_PART}+={_PART}+)*)?")
# Query keys SQLAlchemy reads itself (multi-host lists, its plugins) instead of passing on.
_SQLALCHEMYS_KEYS = {"host", "port", "plugin"}


def pg_plain_dsn(url: str) -> str | None:
    """`pg_dsn(url)` when libpq reads it as SQLAlchemy does, else None (see _PLAIN_PG_URL;
    and no key twice: libpq keeps the last, SQLAlchemy passes a list)."""
    if _PLAIN_PG_URL.fullmatch(url) is None:
        return None
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    if _SQLALCHEMYS_KEYS & query.keys() or any(len(v) > 1 for v in query.values()):
        return None
    return pg_dsn(url)


# --- SQLite -------------------------------------------------------------------------------

def sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite:///PATH` URL (`~` expanded); None for in-memory and `file:`
    URI databases, which followup neither creates nor checks."""
    if not url.startswith("sqlite:///"):
        return None
    raw = url.removeprefix("sqlite:///").split("?", 1)[0]
    if not raw or raw == ":memory:" or raw.startswith("file:"):
        return None
    return Path(raw).expanduser()


def sqlite_url(url: str) -> str:
    """`url` with its path's `~` expanded (SQLite would take it literally)."""
    path = sqlite_path(url)
    if path is None or not url.removeprefix("sqlite:///").startswith("~"):
        return url
    query = url.partition("?")[2]
    return f"sqlite:///{path}" + (f"?{query}" if query else "")


def prepare_sqlite_file(path: Path, *, create: bool) -> None:
    """Make sure the database file exists before SQLite opens it, creating it (0600) and
    any missing directory (0700) when `create`; otherwise a missing file is an error."""
    if path.exists():
        return
    if not create:
        raise DatabaseError(
            f"no database at {path} (DATABASE_URL): a read-only command does not create "
            "one; check the path, or create it with a command that writes "
            "(`followup db upgrade`)")
    _make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process got there first: its file, its mode
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
    finally:
        os.close(fd)


def _make_private_dirs(directory: Path) -> None:
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for level in reversed(missing):
        try:
            level.mkdir(mode=0o700)
        except FileExistsError:
            continue  # created by a concurrent first use
        os.chmod(level, 0o700)  # mkdir's mode is filtered by the umask

"""One settings object, built from the environment (and command-line overrides) and
validated once at start. A bad value is refused with one line naming its variable."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from followup_cli.errors import SettingsError
from followup_cli.templates import TemplateSet, load_templates

# (variable, default, meaning) — the single source for `--help` and the README table.
SETTINGS_DOC: tuple[tuple[str, str, str], ...] = (
    ("DATABASE_URL", "embedded SQLite file", "where everything lives"),
    ("SCHEDULER_TIMEZONE", "UTC", "IANA zone for naive times, 'today', send windows"),
    ("FOLLOWUP_DELAY_HOURS", "24", "elapsed hours from event to post-event follow-up"),
    ("REENGAGEMENT_INACTIVE_DAYS", "30", "inactivity that triggers re-engagement"),
    ("SCHEDULER_ENABLED", "true", "false: passes exit 0 doing nothing"),
    ("FOLLOWUP_SENDER", "log on the embedded database, else none (required)",
     "log | file:PATH | webhook:URL | command:CMD"),
    ("FOLLOWUP_MAX_PENDING_PER_USER", "10", "cap on pending follow-ups per user"),
    ("FOLLOWUP_MAX_RETRIES", "3", "retries of a failed delivery before 'failed'"),
    ("FOLLOWUP_TEMPLATES_FILE", "none", "TOML file overriding or adding templates"),
    ("FOLLOWUP_LEASE_SECONDS", "600", "how long a claimed follow-up is held"),
    ("FOLLOWUP_SEND_WINDOW", "none", "e.g. 09:00-20:00; deliveries wait outside it"),
    ("FOLLOWUP_WEBHOOK_SECRET", "none", "Standard Webhooks secret (whsec_ + base64)"),
    ("FOLLOWUP_ENCRYPTION_KEY", "none",
     "Fernet keys, comma-separated: the first encrypts messages, all decrypt"),
    ("FOLLOWUP_ALERT_FAILURES", "10", "health: failures in the last hour above this alert"),
    ("FOLLOWUP_ALERT_DELAY_MINUTES", "30", "health: mean delay in the last hour above this"),
    ("FOLLOWUP_ALERT_BACKLOG", "50", "health: pending over an hour late above this"),
    ("FOLLOWUP_ALERT_STALE_MINUTES", "5", "health: no finished run-due pass for this long"),
    ("FOLLOWUP_ALERT_SCAN_HOURS", "25", "health: no successful scan-inactive for this long"),
)

# Accepted without being settings of their own (MEMORY_BACKEND: the guide's .env), and
# settings other modules document; every other FOLLOWUP_*/SCHEDULER_* name is a suspect.
ALSO_ACCEPTED = ("MEMORY_BACKEND", "FOLLOWUP_ENCRYPTION_KEY")
# The test suite's and benchmarks' own variables: never read by a command, never warned about.
DEVELOPMENT_PREFIXES = ("FOLLOWUP_TEST_", "FOLLOWUP_BENCH_")
DEVELOPMENT_NAMES = ("FOLLOWUP_REQUIRE_POSTGRES", "FOLLOWUP_OPERATIONS_GUIDE")
OWN_PREFIXES = ("FOLLOWUP_", "SCHEDULER_", "REENGAGEMENT_")
MAX_TYPO_DISTANCE = 2

# Upper bounds of durations (100 years): beyond them date arithmetic would overflow.
MAX_DAYS = 36_500
MAX_DELAY_HOURS = MAX_DAYS * 24

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def default_database_path() -> Path:
    # platformdirs is imported here, not at module top: --help must stay fast.
    from platformdirs import user_data_path

    return user_data_path("followup", appauthor=False) / "followup.db"


@dataclass(frozen=True)
class SendWindow:
    """A daily window of local time; `start > end` means it spans midnight."""

    start: time
    end: time

    def contains(self, t: time) -> bool:
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class AlertThresholds:
    failures_per_hour: int = 10
    delay_minutes: float = 30.0
    overdue_backlog: int = 50
    stale_minutes: float = 5.0
    scan_hours: float = 25.0  # a daily scan plus an hour of slack


@dataclass(frozen=True)
class Settings:
    database_url: str
    database_is_default: bool
    timezone: ZoneInfo
    delay_hours: float = 24.0
    inactive_days: int = 30
    enabled: bool = True
    sender: str | None = "log"  # None: not set where it must be (any DATABASE_URL)
    max_pending_per_user: int = 10
    max_retries: int = 3
    templates_file: Path | None = None
    lease_seconds: int = 600
    send_window: SendWindow | None = None
    webhook_secret: bytes | None = field(default=None, repr=False)
    # Fernet keys (url-safe base64 text), the first encrypts; see followup_cli.crypto.
    encryption_keys: tuple[str, ...] = field(default=(), repr=False)
    alerts: AlertThresholds = field(default_factory=AlertThresholds)

    @property
    def timezone_name(self) -> str:
        return self.timezone.key

    def templates(self) -> TemplateSet:
        """The template set in force: built-ins, overridden by the templates file."""
        return load_templates(self.templates_file)

    def require_sender(self) -> str:
        """The delivery channel; refused (exit 2) when none was chosen. Only the embedded
        database defaults to `log`: against a real database an unset FOLLOWUP_SENDER would
        print personal data to cron's mail and mark it delivered."""
        if self.sender is None:
            raise SettingsError(
                "FOLLOWUP_SENDER: not set; with DATABASE_URL set, choose the delivery "
                "channel explicitly: log, file:PATH, webhook:URL or command:CMD")
        return self.sender

    @property
    def database_display(self) -> str:
        """The database URL for output and logs: plain `postgresql://`, password masked."""
        from followup_cli.redact import display_url

        return display_url(self.database_url)


def normalize_database_url(url: str) -> str:
    """Accept the URL forms operators already use and map them to our one driver.

    `postgresql://` (what psql and pg_dump take), `postgres://`, `postgresql+asyncpg://`
    (from the guide's .env) all run on psycopg2; `sqlite:///PATH` is used as given.
    """
    from followup_cli.redact import mask_url, without_userinfo

    url = url.strip()
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg2://", "postgresql://",
                   "postgres://"):
        if url.startswith(prefix):
            from urllib.parse import urlsplit

            try:
                # Without the user part: an unescaped ? # / in a password is accepted
                # (SQLAlchemy reads it so) and must not pass for the port.
                urlsplit(without_userinfo(url)).port  # noqa: B018 - a bad port raises
            except ValueError:
                raise SettingsError(
                    f"DATABASE_URL: the port of {mask_url(url)!r} is not a number") from None
            return "postgresql+psycopg2://" + url[len(prefix):]
    if url.startswith("sqlite://"):
        return url
    raise SettingsError(
        "DATABASE_URL: expected postgresql://user:pass@host:5432/db or sqlite:///PATH, "
        f"got {mask_url(url)!r}"
    )


def parse_number(name: str, raw: str, *, integer: bool, minimum: float | None = None,
                 maximum: float | None = None) -> float:
    """A finite number from a variable or an option; the error names it (exit 2)."""
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise SettingsError(f"{name}: {raw!r} is not {kind}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise SettingsError(f"{name}: {raw!r} is not a finite number")
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}: {raw!r} must be at least {minimum:g}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}: {raw!r} must be at most {maximum:g}")
    return value


def parse_bool(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{name}: {raw!r} is not true or false")


def parse_zone(name: str, raw: str) -> ZoneInfo:
    try:
        if not raw or raw.startswith(("/", ".")) or ".." in raw:
            raise ValueError
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{name}: unknown time zone {raw!r} (use an IANA name "
                            "such as America/Los_Angeles)") from None


def parse_window(name: str, raw: str) -> SendWindow:
    try:
        start_s, end_s = raw.replace(" ", "").split("-")
        return SendWindow(time.fromisoformat(start_s), time.fromisoformat(end_s))
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a window like 09:00-20:00") from None


def parse_sender(name: str, raw: str) -> str:
    raw = raw.strip()
    if raw == "log":
        return raw
    kind, sep, target = raw.partition(":")
    if not sep or kind not in ("file", "webhook", "command") or not target.strip():
        # Only the kind is echoed: the rest may be a URL with a token in it.
        shown = f"{kind}:..." if sep else kind
        raise SettingsError(
            f"{name}: {shown!r} is not one of log, file:PATH, webhook:URL, command:CMD"
        )
    if kind == "webhook" and not target.startswith(("http://", "https://")):
        raise SettingsError(f"{name}: webhook URL must start with http:// or https://")
    return raw


def parse_secret(name: str, raw: str) -> bytes:
    body = raw.strip().removeprefix("whsec_")
    try:
        secret = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{name}: not a Standard Webhooks secret (whsec_<base64>)") from None
    if len(secret) < 8:
        raise SettingsError(f"{name}: secret is too short (at least 8 bytes after base64)")
    return secret


FERNET_KEY = re.compile(r"[A-Za-z0-9_-]{43}=")


def parse_encryption_keys(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated Fernet keys. An error names the key's position, never its text."""
    keys = tuple(part.strip() for part in raw.split(","))
    for position, key in enumerate(keys, 1):
        where = f"key {position} of {len(keys)}"
        if not key:
            raise SettingsError(f"{name}: {where} is empty (keys are separated by commas)")
        # Fernet itself decodes leniently (stray characters are dropped): be strict.
        if not FERNET_KEY.fullmatch(key) or len(base64.urlsafe_b64decode(key)) != 32:
            raise SettingsError(
                f"{name}: {where} is not a Fernet key (44 characters of url-safe base64, "
                "as Fernet.generate_key() makes)")
    return keys


def load_settings(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str | None] | None = None,
    *,
    check_templates: bool = True,
) -> Settings:
    """Build and validate the settings. `overrides` maps variable names to values given
    as command-line options; they win over the environment."""
    env = dict(os.environ if environ is None else environ)
    for key, value in (overrides or {}).items():
        if value is not None:
            env[key] = str(value)

    def get(name: str) -> str | None:
        value = env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    raw_url = get("DATABASE_URL")
    if raw_url is None:
        database_url = f"sqlite:///{default_database_path()}"
        is_default = True
    else:
        database_url = normalize_database_url(raw_url)
        is_default = False

    def num(name: str, default: float, *, minimum: float, integer: bool,
            maximum: float = 1e9) -> float:
        # The upper bounds keep date arithmetic (now - 10**9 days) from overflowing.
        raw = get(name)
        return default if raw is None else parse_number(
            name, raw, minimum=minimum, maximum=maximum, integer=integer)

    templates_file = None
    if (raw_tpl := get("FOLLOWUP_TEMPLATES_FILE")) is not None:
        templates_file = Path(raw_tpl).expanduser()
        if not templates_file.is_file():
            raise SettingsError(f"FOLLOWUP_TEMPLATES_FILE: cannot read {raw_tpl!r}")

    window_raw = get("FOLLOWUP_SEND_WINDOW")
    secret_raw = get("FOLLOWUP_WEBHOOK_SECRET")
    sender_raw = get("FOLLOWUP_SENDER")
    keys_raw = get("FOLLOWUP_ENCRYPTION_KEY")
    settings = Settings(
        database_url=database_url,
        database_is_default=is_default,
        timezone=parse_zone("SCHEDULER_TIMEZONE", get("SCHEDULER_TIMEZONE") or "UTC"),
        delay_hours=num("FOLLOWUP_DELAY_HOURS", 24, minimum=0, integer=False,
                        maximum=MAX_DELAY_HOURS),
        inactive_days=int(num("REENGAGEMENT_INACTIVE_DAYS", 30, minimum=1, integer=True,
                              maximum=MAX_DAYS)),
        enabled=parse_bool("SCHEDULER_ENABLED", get("SCHEDULER_ENABLED") or "true"),
        sender=parse_sender("FOLLOWUP_SENDER", sender_raw) if sender_raw
        else ("log" if is_default else None),
        max_pending_per_user=int(
            num("FOLLOWUP_MAX_PENDING_PER_USER", 10, minimum=1, integer=True)),
        max_retries=int(num("FOLLOWUP_MAX_RETRIES", 3, minimum=0, integer=True, maximum=100)),
        templates_file=templates_file,
        lease_seconds=int(num("FOLLOWUP_LEASE_SECONDS", 600, minimum=10, integer=True,
                              maximum=86400)),
        send_window=parse_window("FOLLOWUP_SEND_WINDOW", window_raw) if window_raw else None,
        webhook_secret=parse_secret("FOLLOWUP_WEBHOOK_SECRET", secret_raw)
        if secret_raw else None,
        encryption_keys=parse_encryption_keys("FOLLOWUP_ENCRYPTION_KEY", keys_raw)
        if keys_raw else (),
        alerts=AlertThresholds(
            failures_per_hour=int(num("FOLLOWUP_ALERT_FAILURES", 10, minimum=0, integer=True)),
            delay_minutes=num("FOLLOWUP_ALERT_DELAY_MINUTES", 30, minimum=0, integer=False,
                              maximum=MAX_DAYS * 1440),
            overdue_backlog=int(num("FOLLOWUP_ALERT_BACKLOG", 50, minimum=0, integer=True)),
            stale_minutes=num("FOLLOWUP_ALERT_STALE_MINUTES", 5, minimum=1, integer=False,
                              maximum=MAX_DAYS * 1440),
            scan_hours=num("FOLLOWUP_ALERT_SCAN_HOURS", 25, minimum=1, integer=False,
                           maximum=MAX_DAYS * 24),
        ),
    )
    if check_templates and templates_file is not None:
        settings.templates()  # refuse a broken templates file at start, naming the template
    return settings


# --- misspelled settings ----------------------------------------------------------------

def edit_distance(a: str, b: str, *, bound: int = MAX_TYPO_DISTANCE) -> int:
    """Levenshtein distance of a and b, or bound + 1 once it is sure to exceed `bound` (a
    banded computation: cheap enough to run over the environment at every start)."""
    if abs(len(a) - len(b)) > bound:
        return bound + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [bound + 1] * len(b)
        for j in range(max(1, i - bound), min(len(b), i + bound) + 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1,
                             previous[j - 1] + (ca != b[j - 1]))
        if min(current) > bound:
            return bound + 1
        previous = current
    return min(previous[len(b)], bound + 1)


def known_variables() -> frozenset[str]:
    return frozenset(name for name, _, _ in SETTINGS_DOC) | frozenset(ALSO_ACCEPTED)


def suspicious_variables(names: Iterable[str]) -> list[str]:
    """One warning per environment variable that looks like a setting but is not one: within
    edit distance 2 of a setting's name (any case), or an unknown FOLLOWUP_*, SCHEDULER_*
    or REENGAGEMENT_* name. Such a typo would otherwise leave its setting at the default
    without a word (a misspelled DATABASE_URL runs every pass on the embedded database)."""
    known = known_variables()
    warnings = []
    for name in sorted(names):
        if name in known or name in DEVELOPMENT_NAMES or name.startswith(DEVELOPMENT_PREFIXES):
            continue
        upper = name.upper()
        close = sorted((edit_distance(upper, k), k) for k in known)
        distance, nearest = close[0]
        if distance <= MAX_TYPO_DISTANCE:
            warnings.append(f"{name} is not a setting (ignored): did you mean {nearest}?")
        elif upper.startswith(OWN_PREFIXES):
            nearest = min(known, key=lambda k: (edit_distance(upper, k, bound=64), k))
            warnings.append(f"{name} is not a setting (ignored); the nearest is {nearest} "
                            "(`followup --help` lists them all)")
    return warnings

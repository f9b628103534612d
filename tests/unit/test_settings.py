"""Settings: defaults, URL forms, and one clear error per bad value."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from followup_cli.errors import ExitCode, SettingsError
from followup_cli.redact import mask_url
from followup_cli.settings import load_settings, normalize_database_url


def test_defaults_use_the_embedded_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    s = load_settings({})
    assert s.database_is_default
    assert s.database_url == f"sqlite:///{tmp_path}/followup/followup.db"
    assert (s.timezone_name, s.delay_hours, s.inactive_days, s.enabled, s.sender) == (
        "UTC", 24.0, 30, True, "log")
    assert (s.max_pending_per_user, s.max_retries, s.lease_seconds) == (10, 3, 600)
    assert s.send_window is None and s.webhook_secret is None and s.templates_file is None


@pytest.mark.parametrize(("given", "expected"), [
    ("postgresql://u:p@h:5432/db", "postgresql+psycopg2://u:p@h:5432/db"),
    ("postgres://u@h/db", "postgresql+psycopg2://u@h/db"),
    ("postgresql+asyncpg://u:p@localhost:5432/myhibachi",
     "postgresql+psycopg2://u:p@localhost:5432/myhibachi"),
    ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
    ("sqlite:////var/lib/followup.db", "sqlite:////var/lib/followup.db"),
])
def test_database_url_forms(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_memory_backend_is_accepted_and_ignored() -> None:
    s = load_settings({"MEMORY_BACKEND": "postgresql", "DATABASE_URL": "sqlite:///x.db"})
    assert s.database_url == "sqlite:///x.db"


def test_password_is_masked() -> None:
    assert mask_url("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert mask_url("sqlite:///a.db") == "sqlite:///a.db"


@pytest.mark.parametrize(("env", "needle"), [
    ({"SCHEDULER_TIMEZONE": "Mars/Olympus"}, "SCHEDULER_TIMEZONE"),
    ({"SCHEDULER_TIMEZONE": "../../etc/passwd"}, "SCHEDULER_TIMEZONE"),
    ({"FOLLOWUP_DELAY_HOURS": "-1"}, "FOLLOWUP_DELAY_HOURS"),
    ({"FOLLOWUP_DELAY_HOURS": "soon"}, "FOLLOWUP_DELAY_HOURS"),
    ({"FOLLOWUP_DELAY_HOURS": "nan"}, "FOLLOWUP_DELAY_HOURS"),
    ({"REENGAGEMENT_INACTIVE_DAYS": "0"}, "REENGAGEMENT_INACTIVE_DAYS"),
    ({"REENGAGEMENT_INACTIVE_DAYS": "2.5"}, "REENGAGEMENT_INACTIVE_DAYS"),
    ({"SCHEDULER_ENABLED": "maybe"}, "SCHEDULER_ENABLED"),
    ({"FOLLOWUP_SENDER": "carrier-pigeon"}, "FOLLOWUP_SENDER"),
    ({"FOLLOWUP_SENDER": "webhook:ftp://x"}, "FOLLOWUP_SENDER"),
    ({"FOLLOWUP_SENDER": "file:"}, "FOLLOWUP_SENDER"),
    ({"FOLLOWUP_MAX_PENDING_PER_USER": "ten"}, "FOLLOWUP_MAX_PENDING_PER_USER"),
    ({"FOLLOWUP_MAX_RETRIES": "-3"}, "FOLLOWUP_MAX_RETRIES"),
    ({"FOLLOWUP_TEMPLATES_FILE": "/nonexistent/t.toml"}, "FOLLOWUP_TEMPLATES_FILE"),
    ({"FOLLOWUP_LEASE_SECONDS": "5"}, "FOLLOWUP_LEASE_SECONDS"),
    ({"FOLLOWUP_SEND_WINDOW": "9am-5pm"}, "FOLLOWUP_SEND_WINDOW"),
    ({"FOLLOWUP_WEBHOOK_SECRET": "whsec_not base64!"}, "FOLLOWUP_WEBHOOK_SECRET"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
])
def test_bad_values_name_their_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    message = str(info.value)
    assert message.startswith(needle)
    assert "\n" not in message
    assert info.value.exit_code == ExitCode.INVALID


def test_overrides_win_over_environment() -> None:
    s = load_settings({"SCHEDULER_TIMEZONE": "UTC"},
                      {"SCHEDULER_TIMEZONE": "Europe/London", "DATABASE_URL": None})
    assert s.timezone_name == "Europe/London"


def test_send_window_across_midnight() -> None:
    s = load_settings({"FOLLOWUP_SEND_WINDOW": "21:00-02:00"})
    window = s.send_window
    assert window is not None
    assert window.contains(time(23, 30)) and window.contains(time(1, 59))
    assert not window.contains(time(2, 0)) and not window.contains(time(12, 0))
    day = load_settings({"FOLLOWUP_SEND_WINDOW": "09:00-20:00"}).send_window
    assert day is not None and day.contains(time(9, 0)) and not day.contains(time(20, 0))


def test_webhook_secret_decodes() -> None:
    s = load_settings({"FOLLOWUP_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
    assert s.webhook_secret is not None and len(s.webhook_secret) == 24
    assert "MfKQ" not in repr(s)  # secrets stay out of reprs and logs


def test_broken_templates_file_refused_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "t.toml"
    bad.write_text('[templates.post_event_high_emotion]\ncontent = "Hi {name}"\n')
    with pytest.raises(SettingsError, match=r"post_event_high_emotion.*unknown placeholder"):
        load_settings({"FOLLOWUP_TEMPLATES_FILE": str(bad)})


@pytest.mark.parametrize(("env", "needle"), [
    ({"FOLLOWUP_DELAY_HOURS": "1e300"}, "FOLLOWUP_DELAY_HOURS"),
    ({"FOLLOWUP_LEASE_SECONDS": "99999999999999"}, "FOLLOWUP_LEASE_SECONDS"),
    ({"REENGAGEMENT_INACTIVE_DAYS": "99999999"}, "REENGAGEMENT_INACTIVE_DAYS"),
    ({"DATABASE_URL": "postgresql://u:p@127.0.0.1:abc/x"}, "DATABASE_URL"),
])
def test_values_out_of_range_are_refused_at_start(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert str(info.value).startswith(needle)
    assert "p@" not in str(info.value)  # the password stays masked


def test_password_in_query_string_is_masked() -> None:
    masked = mask_url("postgresql://app:pw1@db/x?password=pw2&sslmode=require")
    assert "pw1" not in masked and "pw2" not in masked and "sslmode=require" in masked

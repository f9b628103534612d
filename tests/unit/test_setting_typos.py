"""Misconfiguration never looks healthy: misspelled settings are named, the sender has no
silent default outside the embedded database."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from followup_cli.errors import ExitCode, SettingsError
from followup_cli.settings import (
    SETTINGS_DOC,
    edit_distance,
    load_settings,
    suspicious_variables,
)

SETTINGS = [name for name, _, _ in SETTINGS_DOC]


def levenshtein(a: str, b: str) -> int:
    """The textbook full-matrix distance, to hold the banded one to."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


@given(st.text("ABCDE_", max_size=12), st.text("ABCDE_", max_size=12))
def test_banded_distance_agrees_with_the_textbook_up_to_the_bound(a: str, b: str) -> None:
    exact = levenshtein(a, b)
    assert edit_distance(a, b) == min(exact, 3)


@given(st.sampled_from(SETTINGS), st.data())
def test_any_one_or_two_typos_of_a_setting_are_named(name: str, data: st.DataObject) -> None:
    typo = name
    for _ in range(data.draw(st.integers(1, 2))):
        at = data.draw(st.integers(0, len(typo) - 1))
        typo = data.draw(st.sampled_from([
            typo[:at] + typo[at + 1:],  # a letter dropped
            typo[:at] + "X" + typo[at + 1:],  # a letter replaced
            typo[:at] + "Q" + typo[at:],  # a letter added
        ]))
    if typo in SETTINGS or typo == "MEMORY_BACKEND" or not typo:
        return
    [warning] = suspicious_variables([typo])
    assert warning.startswith(f"{typo} is not a setting")
    # it names the setting it resembles (another one may be as close: DELAY/RETRIES...)
    named = warning.rsplit(" ", 1)[-1].rstrip("?")
    assert named in SETTINGS and edit_distance(typo, named) <= 2


@pytest.mark.parametrize(("name", "resembles"), [
    ("DATABSE_URL", "DATABASE_URL"),
    ("FOLLOWUP_SENDR", "FOLLOWUP_SENDER"),
    ("database_url", "DATABASE_URL"),  # not read: names are case-sensitive
    ("SCHEDULER_TIMEZONE_", "SCHEDULER_TIMEZONE"),
    ("FOLLOWUP_WEBHOOK_URL", "FOLLOWUP_WEBHOOK_SECRET"),  # unknown FOLLOWUP_*: the nearest
    ("SCHEDULER_TZ", "SCHEDULER_TIMEZONE"),
])
def test_the_warning_names_the_setting_it_resembles(name: str, resembles: str) -> None:
    [warning] = suspicious_variables([name])
    assert name in warning and resembles in warning


@pytest.mark.parametrize("name", [
    *SETTINGS, "MEMORY_BACKEND", "FOLLOWUP_ENCRYPTION_KEY", "PATH", "HOME", "LANG",
    "DATABASE", "SCHEDULER", "FOLLOWUP_TEST_POSTGRES_URL", "FOLLOWUP_REQUIRE_POSTGRES",
    "FOLLOWUP_BENCH_POSTGRES_URL", "_FOLLOWUP_COMPLETE",
])
def test_settings_and_unrelated_variables_are_not_warned_about(name: str) -> None:
    assert suspicious_variables([name]) == []


def test_the_test_suites_own_environment_raises_no_warning() -> None:
    assert suspicious_variables(os.environ) == []


def test_the_sender_defaults_to_log_only_on_the_embedded_database() -> None:
    assert load_settings({}).sender == "log"
    assert load_settings({}).require_sender() == "log"
    explicit = load_settings({"DATABASE_URL": "sqlite:////tmp/x.db"})
    assert explicit.sender is None
    with pytest.raises(SettingsError, match="FOLLOWUP_SENDER") as caught:
        explicit.require_sender()
    assert caught.value.exit_code == ExitCode.INVALID
    chosen = load_settings({"DATABASE_URL": "postgresql://u@h/db", "FOLLOWUP_SENDER": "log"})
    assert chosen.require_sender() == "log"

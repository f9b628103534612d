"""Privacy commands through the CLI: db reencrypt, db grants, show --show-message on sealed
rows, conversation retention, the encryption key setting, health's sender."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from followup_cli.cli.app import app
from followup_cli.crypto import MessageCipher, key_id
from followup_cli.service.browse import HIDDEN
from followup_cli.service.context import Context
from followup_cli.settings import normalize_database_url
from tests.conftest import PG_ADMIN_URL, MakeCtx
from tests.helpers import add_followup

runner = CliRunner()
KEY_A = base64.urlsafe_b64encode(b"a" * 32).decode()
KEY_B = base64.urlsafe_b64encode(b"b" * 32).decode()


def run(url: str, *args: str, **env: str) -> Any:
    return runner.invoke(app, list(args), env={"DATABASE_URL": url, **env})


def one_error_line(result: Any, needle: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.output


def sealed_row(ctx: Context, fid: str, key: str, text: str) -> None:
    cipher = MessageCipher([key])
    add_followup(ctx, id=fid, message_content=cipher.seal(text),
                 trigger_data=cipher.seal_trigger_data({"event_date": "2026-11-14",
                                                        "custom_message": f"custom {text}"}))


# --- db reencrypt -----------------------------------------------------------------------

def test_reencrypt_json_then_rerun(make_ctx: MakeCtx, db_url: str) -> None:
    ctx = make_ctx()
    add_followup(ctx, id="plain-1", message_content="hello")
    sealed_row(ctx, "sealed-1", KEY_A, "hi")
    result = run(db_url, "db", "reencrypt", "--json", FOLLOWUP_ENCRYPTION_KEY=f"{KEY_B},{KEY_A}")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["rewritten"], doc["complete"], doc["key_id"]) == (2, True, key_id(KEY_B))
    again = run(db_url, "db", "reencrypt", FOLLOWUP_ENCRYPTION_KEY=f"{KEY_B},{KEY_A}")
    assert again.exit_code == 0 and "rewrote 0 of 2 rows" in again.stdout


def test_reencrypt_dry_run_exits_1_while_rows_need_the_old_key(make_ctx: MakeCtx,
                                                               db_url: str) -> None:
    """"Run it until it exits 0, then drop the old key": a dry run that finds rows to
    rewrite must not exit 0 (it said complete: true, and a script would drop the key)."""
    sealed_row(make_ctx(), "sealed-1", KEY_A, "hi")
    keys = {"FOLLOWUP_ENCRYPTION_KEY": f"{KEY_B},{KEY_A}"}
    dry = run(db_url, "db", "reencrypt", "--dry-run", "--json", **keys)
    assert dry.exit_code == 1 and json.loads(dry.stdout)["complete"] is False
    assert run(db_url, "db", "reencrypt", **keys).exit_code == 0
    assert run(db_url, "db", "reencrypt", "--dry-run", **keys).exit_code == 0


def test_reencrypt_dry_run_creates_no_database(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here" / "x.db"
    result = run(f"sqlite:///{missing}", "db", "reencrypt", "--dry-run",
                 FOLLOWUP_ENCRYPTION_KEY=KEY_A)
    assert result.exit_code == 4
    assert not missing.parent.exists()


def test_reencrypt_names_what_no_key_opens_and_exits_1(make_ctx: MakeCtx, db_url: str) -> None:
    sealed_row(make_ctx(), "lost-key-1", KEY_A, "secret words")
    result = run(db_url, "db", "reencrypt", FOLLOWUP_ENCRYPTION_KEY=KEY_B)
    assert result.exit_code == 1
    assert "lost-key-1" in result.stdout and "secret words" not in result.output


@pytest.mark.parametrize(("args", "env", "needle"), [
    ([], {}, "FOLLOWUP_ENCRYPTION_KEY is not set"),
    (["--batch-size", "0"], {"FOLLOWUP_ENCRYPTION_KEY": KEY_A}, "--batch-size"),
    ([], {"FOLLOWUP_ENCRYPTION_KEY": f"{KEY_A},oops"}, "key 2 of 2"),
])
def test_reencrypt_refuses_bad_input_with_one_line(sqlite_url: str, args: list[str],
                                                   env: dict[str, str], needle: str) -> None:
    result = run(sqlite_url, "db", "reencrypt", *args, **env)
    assert result.exit_code == 2
    one_error_line(result, needle)
    assert "oops" not in result.output


# --- show --show-message --------------------------------------------------------------

def test_show_opens_sealed_messages_only_when_asked(make_ctx: MakeCtx, db_url: str) -> None:
    sealed_row(make_ctx(), "sealed-show", KEY_A, "Hello Ada")
    # Without --show-message nothing is decrypted: it works even with no key at all.
    for env in ({"FOLLOWUP_ENCRYPTION_KEY": KEY_A}, {}):
        hidden = run(db_url, "show", "sealed-show", "--json", **env)
        assert hidden.exit_code == 0, hidden.output
        doc = json.loads(hidden.stdout)
        assert doc["message_content"] is None and not doc["message_shown"]
        assert doc["trigger_data"]["custom_message"] == HIDDEN
        assert "fernet:" not in hidden.stdout
    text = run(db_url, "show", "sealed-show")
    assert HIDDEN in text.stdout and "fernet:" not in text.stdout
    shown = run(db_url, "show", "sealed-show", "--show-message", "--json",
                FOLLOWUP_ENCRYPTION_KEY=f"{KEY_B},{KEY_A}")
    doc = json.loads(shown.stdout)
    assert doc["message_content"] == "Hello Ada"
    assert doc["trigger_data"]["custom_message"] == "custom Hello Ada"
    # `list` never reads message content, sealed or not.
    listed = run(db_url, "list", "--json", FOLLOWUP_ENCRYPTION_KEY=KEY_A)
    assert "Hello" not in listed.stdout and "fernet:" not in listed.stdout


@pytest.mark.parametrize(("env", "code", "needle"), [
    ({}, 2, "FOLLOWUP_ENCRYPTION_KEY is not set"),
    ({"FOLLOWUP_ENCRYPTION_KEY": KEY_B}, 1, "not in FOLLOWUP_ENCRYPTION_KEY"),
])
def test_show_of_a_message_no_key_opens_is_one_clear_line(make_ctx: MakeCtx, db_url: str,
                                                          env: dict[str, str], code: int,
                                                          needle: str) -> None:
    sealed_row(make_ctx(), "sealed-x", KEY_A, "Hello Ada")
    result = run(db_url, "show", "sealed-x", "--show-message", **env)
    assert result.exit_code == code
    one_error_line(result, needle)
    assert "sealed-x" in result.stderr and "Ada" not in result.output


# --- cleanup --conversations-older-than-days ------------------------------------------

def test_cleanup_conversations_dry_run_json(db_url: str) -> None:
    result = run(db_url, "cleanup", "--dry-run", "--conversations-older-than-days", "10",
                 "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["counts"]["conversations"] == 0 and doc["conversations_older_than_days"] == 10
    assert "REENGAGEMENT_INACTIVE_DAYS" in result.stderr  # shorter than 30 days: warned


# --- health ---------------------------------------------------------------------------

def test_health_shows_the_sender_without_its_secrets(db_url: str) -> None:
    result = run(db_url, "health", "--json",
                 FOLLOWUP_SENDER="webhook:https://bot:pw@hooks.example.com/f?token=t0k3n")
    doc = json.loads(result.stdout)
    assert doc["sender"] == "webhook:https://hooks.example.com/f"
    assert not doc["database"].startswith("postgresql+")


# --- db grants ------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "needle"), [
    (["--scheduler", "a b", "--monitor", "m"], "--scheduler"),
    (["--scheduler", "s", "--monitor", 'x";DROP TABLE y;--'], "--monitor"),
    (["--scheduler", "s", "--monitor", "public"], "--monitor"),
    (["--scheduler", "s", "--monitor", "pg_read_all_data"], "--monitor"),
    (["--scheduler", "same", "--monitor", "same"], "two different roles"),
])
def test_grants_refuse_unusable_role_names(db_url: str, args: list[str], needle: str) -> None:
    result = run(db_url, "db", "grants", *args)
    assert result.exit_code == 2
    one_error_line(result, needle)


def test_grants_on_sqlite_is_exit_2(sqlite_url: str) -> None:
    result = run(sqlite_url, "db", "grants", "--scheduler", "s", "--monitor", "m")
    assert result.exit_code == 2
    one_error_line(result, "SQLite")


@pytest.fixture
def pg_roles(pg_url: str) -> Iterator[list[str]]:
    names = [f"fu_cli_{uuid.uuid4().hex[:8]}_{i}" for i in range(3)]
    admin = sa.create_engine(normalize_database_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'CREATE ROLE "{name}" LOGIN')
    yield names
    owner = sa.create_engine(normalize_database_url(pg_url), isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.exec_driver_sql("DROP OWNED BY " + ", ".join(f'"{n}"' for n in names))
    owner.dispose()
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{name}"')
    admin.dispose()


@pytest.mark.postgres
def test_grants_name_a_missing_role_and_a_case_slip(pg_url: str, pg_roles: list[str]) -> None:
    missing = run(pg_url, "db", "grants", "--scheduler", pg_roles[0], "--monitor", "nobody_x1")
    assert missing.exit_code == 2
    one_error_line(missing, "role 'nobody_x1' does not exist")
    folded = run(pg_url, "db", "grants", "--scheduler", pg_roles[0].upper(), "--monitor",
                 pg_roles[1])
    assert folded.exit_code == 2 and "folded to lower case" in folded.stderr


@pytest.mark.postgres
def test_grants_print_a_script_and_change_nothing(pg_url: str, pg_engine: sa.Engine,
                                                   pg_roles: list[str]) -> None:
    result = run(pg_url, "db", "grants", "--scheduler", pg_roles[0], "--monitor", pg_roles[1])
    assert result.exit_code == 0, result.output
    script = result.stdout
    assert script.startswith("-- followup") and script.rstrip().endswith("COMMIT;")
    statements = [line for line in script.splitlines() if not line.startswith("--")]
    assert any(f'TO "{pg_roles[0]}"' in line for line in statements)
    assert not [line for line in statements if "CREATE" in line or "OWNER" in line]
    with pg_engine.connect() as conn:
        assert not conn.execute(sa.text(
            "SELECT has_table_privilege(:r, 'scheduled_followups', 'SELECT')"),
            {"r": pg_roles[1]}).scalar()


@pytest.mark.postgres
def test_grants_applied_by_a_role_that_does_not_own_the_tables_is_exit_4(
        pg_url: str, pg_roles: list[str]) -> None:
    """PostgreSQL only warns when a non-owner grants nothing: followup checks and fails."""
    owner = sa.create_engine(normalize_database_url(pg_url), isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:  # enough to read the tables, not to grant on them
        conn.exec_driver_sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{pg_roles[2]}"')
    owner.dispose()
    as_other = pg_url.replace("postgres@", f"{pg_roles[2]}@", 1)
    result = run(as_other, "db", "grants", "--scheduler", pg_roles[0], "--monitor",
                 pg_roles[1], "--apply")
    assert result.exit_code == 4, result.output
    one_error_line(result, "did not take effect")

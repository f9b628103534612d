"""The connect parameters followup adds to DATABASE_URL: only what the operator left unset.

Before, the engine and the idle probe passed application_name and
`options=-c statement_timeout=...` as keyword arguments, which libpq lets override the
URL's own: an operator's `?application_name=...` or `?options=-c search_path=...` was lost.
"""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from followup_cli.db import CONNECT_TIMEOUT_S, LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS
from followup_cli.db.connect import (
    option_settings,
    pg_connect_params,
    pg_dsn,
    split_options,
    sqlite_path,
)

BASE = "postgresql+psycopg2://app:secret@db:5432/app"
NO_ENV: dict[str, str] = {}
RC = r"-c default_transaction_isolation=read\ committed"  # always, last


def test_bare_url_gets_every_default() -> None:
    assert pg_connect_params(BASE, environ=NO_ENV) == {
        "application_name": "followup", "connect_timeout": CONNECT_TIMEOUT_S,
        "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS} "
                   f"-c lock_timeout={LOCK_TIMEOUT_MS} {RC}"}


def test_the_urls_own_parameters_win() -> None:
    options = quote("-c search_path=billing,public -c lock_timeout=1500")
    url = f"{BASE}?application_name=billing-cron&connect_timeout=3&options={options}"
    params = pg_connect_params(url, environ=NO_ENV)
    assert "application_name" not in params and "connect_timeout" not in params
    # the operator's options are kept as written; only the missing timeout is added
    assert params["options"] == (
        f"-c search_path=billing,public -c lock_timeout=1500 "
        f"-c statement_timeout={STATEMENT_TIMEOUT_MS} {RC}")


def test_only_the_isolation_added_when_the_url_sets_both_timeouts() -> None:
    url = f"{BASE}?options={quote('--statement-timeout=5s -clock_timeout=0')}"
    assert pg_connect_params(url, environ=NO_ENV)["options"] == (
        f"--statement-timeout=5s -clock_timeout=0 {RC}")
    both = quote(r"-c statement_timeout=1 -c lock_timeout=2 "
                 r"-c default_transaction_isolation=read\ committed")
    assert "options" not in pg_connect_params(f"{BASE}?options={both}", environ=NO_ENV)


def test_read_committed_wins_over_the_operators_isolation() -> None:
    """The rules are written for READ COMMITTED (a later -c of the same name wins)."""
    url = f"{BASE}?options={quote('-c default_transaction_isolation=serializable')}"
    options = str(pg_connect_params(url, environ=NO_ENV)["options"])
    assert options.endswith(RC)
    assert option_settings(options)["default_transaction_isolation"] == "read committed"


def test_libpq_environment_counts_as_set() -> None:
    env = {"PGAPPNAME": "from-env", "PGCONNECT_TIMEOUT": "2",
           "PGOPTIONS": "-c search_path=s1 -c statement_timeout=1000"}
    params = pg_connect_params(BASE, environ=env)
    assert params == {"options": f"-c search_path=s1 -c statement_timeout=1000 "
                                 f"-c lock_timeout={LOCK_TIMEOUT_MS} {RC}"}


def test_url_options_replace_pgoptions_as_libpq_does() -> None:
    env = {"PGOPTIONS": "-c lock_timeout=1"}
    params = pg_connect_params(f"{BASE}?options={quote('-c search_path=x')}", environ=env)
    assert params["options"] == (f"-c search_path=x -c statement_timeout={STATEMENT_TIMEOUT_MS}"
                                 f" -c lock_timeout={LOCK_TIMEOUT_MS} {RC}")


def test_option_forms() -> None:
    assert option_settings(r"-c search_path=a\ b -cwork_mem=4MB --lock-timeout=7 -c") == {
        "search_path": "a b", "work_mem": "4MB", "lock_timeout": "7"}
    assert split_options(r"  -c  x=1\\ ") == ["-c", "x=1\\"]


def test_dsn_and_sqlite_paths(tmp_path) -> None:
    assert pg_dsn(BASE + "?sslmode=require") == "postgresql://app:secret@db:5432/app?sslmode=require"
    assert sqlite_path(f"sqlite:///{tmp_path}/x.db") == tmp_path / "x.db"
    assert sqlite_path("sqlite://") is None and sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("sqlite:///file:x.db?mode=ro&uri=true") is None
    assert str(sqlite_path("sqlite:///~/x.db")).startswith("/")


NAMES = st.sampled_from(["search_path", "statement_timeout", "lock_timeout", "work_mem",
                         "timezone", "application_name"])
VALUES = st.text(alphabet="abcdefghij0123456789_,.", min_size=1, max_size=8)
FORMS = st.sampled_from(["-c {n}={v}", "-c{n}={v}", "--{n}={v}"])


@given(st.lists(st.tuples(FORMS, NAMES, VALUES), max_size=6))
def test_operator_options_survive_and_ours_fill_the_gaps(settings) -> None:
    """Whatever `-c` settings the operator writes, each survives with its value, and the
    two timeouts are added exactly when absent."""
    options = " ".join(form.format(n=(name.replace("_", "-") if form.startswith("--")
                                      else name), v=value)
                       for form, name, value in settings)
    params = pg_connect_params(f"{BASE}?options={quote(options)}", environ=NO_ENV)
    merged = option_settings(str(params.get("options", options)))
    written = {name: value for _form, name, value in settings}
    for name, value in written.items():
        assert merged[name] == value
    assert merged.get("statement_timeout") == written.get(
        "statement_timeout", str(STATEMENT_TIMEOUT_MS))
    assert merged.get("lock_timeout") == written.get("lock_timeout", str(LOCK_TIMEOUT_MS))

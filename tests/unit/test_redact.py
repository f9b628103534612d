"""Masking secrets: every URL form libpq and SQLAlchemy accept, DSNs, senders, free text."""

from __future__ import annotations

import io
import logging
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from followup_cli.redact import (
    RedactingStream,
    Redactor,
    StderrHandler,
    display_url,
    mask_dsn,
    mask_url,
    sender_display,
)

# Users, hosts and databases are lowercase; every password carries "Zq", so finding the
# password in the output can only mean it leaked.
NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12)
HOSTS = st.one_of(NAMES, st.just("127.0.0.1"), st.just("db.internal"))
SCHEMES = st.sampled_from(["postgresql", "postgres", "postgresql+psycopg2",
                           "postgresql+asyncpg", "postgresql+pg8000", "sqlite", "mysql+pymysql"])
# Unescaped delimiters inside the password are the hard part: ? @ / # : & = % and spaces.
RAW = st.text(alphabet=st.sampled_from(list("abcXYZ0189?@/#:&=%+!$~ ")), max_size=12)
PASSWORDS = st.builds(lambda a, b: f"{a}Zq{b}", RAW, RAW)
QUERIES = st.lists(st.tuples(st.sampled_from(["sslmode", "application_name", "connect_timeout"]),
                             NAMES), max_size=3).map(lambda kv: "&".join(f"{k}={v}" for k, v in kv))


def _url(scheme: str, user: str, password: str, host: str, port: int | None, db: str,
         query: str) -> str:
    netloc = host + (f":{port}" if port else "")
    return f"{scheme}://{user}:{password}@{netloc}/{db}" + (f"?{query}" if query else "")


@given(SCHEMES, NAMES, PASSWORDS, HOSTS, st.one_of(st.none(), st.integers(1, 65535)), NAMES,
       QUERIES)
def test_a_raw_password_never_survives_masking(scheme: str, user: str, password: str,
                                               host: str, port: int | None, db: str,
                                               query: str) -> None:
    url = _url(scheme, user, password, host, port, db, query)
    for shown in (mask_url(url), display_url(url)):
        assert password not in shown and "Zq" not in shown, shown
        assert shown.count("***") >= 1


@given(SCHEMES, NAMES, PASSWORDS, HOSTS, st.integers(1, 65535), NAMES)
def test_an_escaped_url_keeps_everything_but_the_password(scheme: str, user: str,
                                                          password: str, host: str,
                                                          port: int, db: str) -> None:
    url = _url(scheme, user, quote(password, safe=""), host, port, db, "sslmode=require")
    plain = "postgresql" if scheme.startswith("postgres") else scheme
    assert display_url(url) == f"{plain}://{user}:***@{host}:{port}/{db}?sslmode=require"
    assert mask_url(url) == f"{scheme}://{user}:***@{host}:{port}/{db}?sslmode=require"


@given(NAMES, st.sampled_from(["password", "sslpassword", "PASSWORD", "api_token"]),
       st.builds(lambda a: f"Zq{a}", st.text(alphabet=st.sampled_from(list("ab?/#:=@%+ ")),
                                             max_size=10)), QUERIES)
def test_secret_query_parameters_are_masked(host: str, name: str, value: str,
                                            query: str) -> None:
    url = f"postgresql://{host}/db?{query + '&' if query else ''}{name}={value}&sslmode=require"
    shown = display_url(url)
    assert "Zq" not in shown and f"{name}=***" in shown and shown.endswith("&sslmode=require")


@given(st.builds(lambda a: f"Zq{a}", st.text(alphabet=st.sampled_from(list("ab?/#:=@%+")),
                                             max_size=10)))
def test_key_value_dsn_passwords_are_masked(value: str) -> None:
    assert "Zq" not in mask_dsn(f"host=h port=5432 password={value} dbname=d")
    assert "Zq" not in mask_url(f"host=h sslpassword = {value} dbname=d")
    quoted = "'" + f"{value} with spaces \\' and a quote".replace("'", "\\'") + "'"
    shown = mask_dsn(f"host=h password={quoted} dbname=d")
    assert "Zq" not in shown and "spaces" not in shown and shown.endswith(" dbname=d")


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:pa?ss@host/db", "postgresql://u:***@host/db"),  # the case
    ("postgresql+psycopg2://app:s3cret@db:5432/x", "postgresql://app:***@db:5432/x"),
    ("postgresql://u:p@ss/w#rd@host:5432/db", "postgresql://u:***@host:5432/db"),
    ("postgres://u@host/db", "postgresql://u@host/db"),
    ("postgresql://u@host/db?application_name=a@b", "postgresql://u@host/db?application_name=a@b"),
    ("sqlite:////var/lib/a@b/followup.db", "sqlite:////var/lib/a@b/followup.db"),
    ("sqlite://", "sqlite://"),
    ("host=h password=secret dbname=x", "host=h password=*** dbname=x"),
])
def test_display_forms(url: str, shown: str) -> None:
    assert display_url(url) == shown


@pytest.mark.parametrize(("spec", "shown"), [
    ("log", "log"),
    ("file:/var/spool/followups.jsonl", "file:/var/spool/followups.jsonl"),
    ("webhook:https://api.example.com/hooks/f?token=Zq123&x=1",
     "webhook:https://api.example.com/hooks/f"),
    ("webhook:https://bot:Zq?pw@api.example.com:8443/f#frag", "webhook:https://api.example.com:8443/f"),
    ("webhook:https://bot@api.example.com/f", "webhook:https://api.example.com/f"),
    ("command:/usr/local/bin/notify --token Zq123", "command:/usr/local/bin/notify …"),
    ("command:notify", "command:notify"),
])
def test_sender_display(spec: str, shown: str) -> None:
    assert sender_display(spec) == shown


@given(NAMES, PASSWORDS.filter(lambda p: len(p.strip()) >= 4), NAMES)
def test_the_backstop_scrubs_a_url_anywhere_in_a_text(user: str, password: str,
                                                      host: str) -> None:
    redactor = Redactor()
    url = f"postgresql://{user}:{password}@{host}/db"
    redactor.remember_environment({"DATABASE_URL": url})
    text = f'connection to {url} failed: password "{password}" or host "{password}@x"'
    assert password.strip() not in redactor.scrub(text)


def test_the_backstop_knows_every_secret_setting() -> None:
    redactor = Redactor()
    redactor.remember_environment(
        {"DATABASE_URL": "postgresql://u:JUNKpw1@JUNKpw2@db/x?sslpassword=JUNKssl",
         "FOLLOWUP_SENDER": "webhook:https://h/p?token=JUNKtok&sig=JUNKsig",
         "FOLLOWUP_WEBHOOK_SECRET": "whsec_SlVOS3NlY3JldDEyMw==",
         "FOLLOWUP_ENCRYPTION_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
        {"DATABASE_URL": None})
    text = ("host JUNKpw2@db unknown; JUNKpw1; JUNKssl; GET /p?token=JUNKtok&sig=JUNKsig; "
            "SlVOS3NlY3JldDEyMw==; AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
    assert "JUNK" not in redactor.scrub(text)
    assert "SlVOS3" not in redactor.scrub(text) and "AAECAw" not in redactor.scrub(text)
    redactor.remember_environment({}, {"FOLLOWUP_SENDER": "webhook:https://h/?k=OVERRIDE1"})
    assert "OVERRIDE1" not in redactor.scrub("sent to https://h/?k=OVERRIDE1")


def test_short_secrets_are_masked_only_where_they_stand() -> None:
    redactor = Redactor()
    redactor.remember_environment({"DATABASE_URL": "postgresql://u:ab@db/x"})
    assert redactor.scrub("postgresql://u:ab@db/x table ab") == "postgresql://u:***@db/x table ab"


def test_stream_wrapper_scrubs_text_and_passes_bytes_probes_through() -> None:
    target = io.StringIO()
    stream = RedactingStream(target)
    stream.write("see postgresql://u:JUNKpw@h/db\n")
    assert target.getvalue() == "see postgresql://u:***@h/db\n"
    with pytest.raises(TypeError):  # click probes streams with write(b"")
        stream.write(b"")
    assert stream.getvalue() == target.getvalue()  # anything else is the wrapped stream's


def test_log_handler_scrubs_records_and_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("followup.test_redact")
    handler = StderrHandler()
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("dsn host=h password=JUNKtb dbname=x")
        except RuntimeError:
            logger.exception("failed on postgresql://u:JUNKlog@h/db")
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "Traceback" in err and "JUNK" not in err


@pytest.mark.parametrize("url", ["postgresql://u:pa?ss@h:5432/db", "postgresql://u:p#w/x@h/db",
                                 "postgresql://u:p@ss@h:5432/db"])
def test_a_password_with_unescaped_delimiters_is_accepted(url: str) -> None:
    """SQLAlchemy connects with such a password; the port check must not trip over it."""
    from followup_cli.settings import normalize_database_url

    assert normalize_database_url(url).startswith("postgresql+psycopg2://u:")


def test_a_bad_port_is_still_refused_with_the_password_masked() -> None:
    from followup_cli.errors import SettingsError
    from followup_cli.settings import normalize_database_url

    with pytest.raises(SettingsError, match="port") as info:
        normalize_database_url("postgresql://u:se?cret@h:xyz/db")
    assert "se?cret" not in str(info.value) and "cret" not in str(info.value)

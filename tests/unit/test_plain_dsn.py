"""The raw paths (idle probe, booking, health) hand DATABASE_URL to libpq directly only
when libpq reads it exactly as SQLAlchemy does; any other URL goes through SQLAlchemy.

Before, they passed every URL to libpq: a password with an unescaped `?` or `#` made libpq
fail with a message quoting the rest of the URL (the password's tail with it), where
SQLAlchemy's parse connects (or fails) without it."""

from __future__ import annotations

import psycopg2.extensions
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects.postgresql import psycopg2 as sa_psycopg2
from sqlalchemy.engine import make_url

from followup_cli.db.connect import pg_plain_dsn

# mostly characters both read alike, with escapes and the characters they do not
PIECE = st.lists(st.sampled_from(["a", "Z", "0", "9", ".", "_", "~", "-", "%2F", "%41", "%20",
                                  "%aa", "%C3%A9",
                                  "%00", "%zz", "%", "+", "?", "#", "/", "@", ":", "&", "=",
                                  "é", " "]), max_size=5).map("".join)


def libpq_reads(dsn: str) -> dict[str, str]:
    return dict(psycopg2.extensions.parse_dsn(dsn))


def sqlalchemy_reads(url: str) -> dict[str, str]:
    dialect = sa_psycopg2.dialect()  # type: ignore[no-untyped-call]
    _, kwargs = dialect.create_connect_args(make_url(url))  # type: ignore[no-untyped-call]
    return {k: str(v) for k, v in kwargs.items()}


@given(user=PIECE, password=PIECE, host=st.sampled_from(["", "db", "127.0.0.1", "[::1]",
                                                          "h-1.example"]),
       port=st.sampled_from(["", ":5432", ":1"]), database=PIECE,
       query=st.sampled_from(["", "?sslmode=require", "?application_name=a%20b",
                              "?options=-c%20search_path%3Dx", "?a=1&b=2",
                              "?sslmode=disable&connect_timeout=3", "?host=x",
                              "?application_name=a+b", "?application_name=x%00",
                              "?sslmode=", "?application_name=a&application_name=b",
                              "?plugin=x"]))
def test_a_plain_url_reads_the_same_to_libpq_and_sqlalchemy(
        user: str, password: str, host: str, port: str, database: str, query: str) -> None:
    userinfo = f"{user}:{password}@" if user else ""
    url = f"postgresql+psycopg2://{userinfo}{host}{port}/{database}{query}"
    dsn = pg_plain_dsn(url)
    if dsn is None:
        return  # SQLAlchemy's path
    ours = sqlalchemy_reads(url)
    try:
        theirs = libpq_reads(dsn)
    except psycopg2.ProgrammingError:
        # an option libpq does not know: refused either way
        with pytest.raises(psycopg2.ProgrammingError):
            psycopg2.extensions.parse_dsn(psycopg2.extensions.make_dsn(**ours))
        return
    # libpq keeps an empty password it was given; SQLAlchemy drops every empty part
    theirs = {k: v for k, v in theirs.items() if v != ""}
    ours = {k: v.strip("[]") if k == "host" else v for k, v in ours.items()}
    assert theirs == ours


@pytest.mark.parametrize("url", [
    "postgresql+psycopg2://app:JUNKb1?JUNKb2#JUNKb3/JUNKb4@127.0.0.1:1/nowhere",
    "postgresql+psycopg2://app:pa@ss@db/app",
    "postgresql+psycopg2://app:p#w@db/app",
    "postgresql+psycopg2://app:p%zz@db/app",
    "postgresql+psycopg2://app@db/%aa",  # no UTF-8: read two ways (found by Hypothesis)
    "postgresql+psycopg2://app@db/app?host=a,b",
    "postgresql+psycopg2://app@db/app?options=-c+x",
    "postgresql+psycopg2://app@db/app?sslmode=",  # SQLAlchemy drops it, libpq sets it empty
    "postgresql+psycopg2://app@db/app?sslmode=disable&sslmode=require",  # a list, the last
    "postgresql+psycopg2://app@db/app?plugin=x",  # SQLAlchemy's own
    "postgresql+psycopg2://app@db:0/app",  # SQLAlchemy drops port 0
])
def test_a_url_libpq_would_read_otherwise_is_not_plain(url: str) -> None:
    assert pg_plain_dsn(url) is None


@pytest.mark.parametrize("url", [
    "postgresql+psycopg2://postgres@127.0.0.1:5432/followup",
    "postgresql+psycopg2://app:s%23cret@db.internal/app?sslmode=require",
    "postgresql+psycopg2:///app",
])
def test_the_usual_urls_are_plain(url: str) -> None:
    assert pg_plain_dsn(url) == url.replace("postgresql+psycopg2://", "postgresql://")

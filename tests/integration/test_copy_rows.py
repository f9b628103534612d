"""Rows staged by COPY come back exactly as given, whatever their text holds: quotes,
commas, line ends, backslashes, an empty string (not NULL), the text "NULL"."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from followup_cli.store import admission as store
from followup_cli.store.stage import STAGE_NAME
from followup_cli.store.statements import stage

pytestmark = pytest.mark.postgres

# Any text PostgreSQL can hold: no NUL, no lone surrogate.
texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                 max_size=40)
tricky = st.sampled_from(["", '"', ",", "\r", "\n", "\r\n", "\\.", "\\", " ", "NULL",
                          "\\N", 'a,"b"\r\nc'])
some_text = st.one_of(texts, tricky)
instants = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-8)),
                                                   timezone(timedelta(hours=5, minutes=30))]))
row_strategy = st.fixed_dictionaries({
    "id": some_text,
    "user_id": some_text,
    "message_content": st.one_of(st.none(), some_text),
    "error_message": st.one_of(st.none(), some_text),
    "trigger_data": st.one_of(st.none(), st.dictionaries(some_text, st.one_of(
        st.none(), some_text, st.integers(-10**6, 10**6)), max_size=3)),
    "scheduled_at": st.one_of(st.none(), instants),
    "retry_count": st.one_of(st.none(), st.integers(-2**31, 2**31 - 1)),
})


@pytest.fixture
def conn(pg_engine: sa.Engine) -> Iterator[sa.Connection]:
    with pg_engine.connect() as connection:
        yield connection


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row_strategy, min_size=1, max_size=8))
def test_staged_rows_read_back_as_written(conn: sa.Connection,
                                          rows: list[dict[str, Any]]) -> None:
    with conn.begin() as transaction:
        store.open_stage(conn)
        given_rows = [{"seq": seq, **row} for seq, row in enumerate(rows)]
        store.add(conn, given_rows)
        names = list(given_rows[0])
        back = [dict(r) for r in conn.execute(
            sa.select(*(stage.c[n] for n in names)).order_by(stage.c.seq)
        ).mappings()]
        transaction.rollback()
    assert back == given_rows


def test_a_missing_key_is_null(conn: sa.Connection) -> None:
    with conn.begin() as transaction:
        store.open_stage(conn)
        store.copy_rows(conn, STAGE_NAME, ["seq", "id", "error_message"],
                        [{"seq": 1, "id": "a", "error_message": "x"}, {"seq": 2, "id": "b"}])
        back = conn.execute(sa.select(stage.c.seq, stage.c.error_message)
                            .order_by(stage.c.seq)).all()
        transaction.rollback()
    assert [tuple(r) for r in back] == [(1, "x"), (2, None)]


"""Partial indexes without dialect keyword arguments.

SQLAlchemy spells a partial index's predicate per dialect (`postgresql_where=`,
`sqlite_where=`), and to check those keywords it imports every dialect named when the
schema module loads: the PostgreSQL dialect (with all its drivers) on an SQLite host and
the other way round, tens of milliseconds of every cron start. These indexes carry their
predicate in `info` instead, and one compile hook writes it into CREATE INDEX on any
dialect (the same text as `postgresql_where`/`sqlite_where` would)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateIndex


def partial_index(name: str, *columns: Any, where: sa.ColumnElement[bool],
                  unique: bool = False) -> sa.Index:
    return sa.Index(name, *columns, unique=unique, info={"where": where})


@compiles(CreateIndex)
def _create_index(element: CreateIndex, compiler: Any, **kw: Any) -> str:
    text: str = compiler.visit_create_index(element, **kw)
    where = element.element.info.get("where")
    if where is not None:
        text += " WHERE " + compiler.sql_compiler.process(
            where, include_table=False, literal_binds=True)
    return text

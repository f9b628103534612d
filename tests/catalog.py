"""A database's schema as its own catalog reports it, for drift tests and restore checks.

Everything that carries a rule is read: columns (type, length, nullability, server
default), primary/foreign/unique/CHECK constraints with their definitions, indexes with
uniqueness and predicates, triggers and the functions behind them. Column order is not
compared (a migration appends what a model may declare in the middle). Text is normalized
only for layout (whitespace, identifier quotes), never for meaning.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

# Tables the catalog of a migrated database has and a model-built one has not.
ALEMBIC_ONLY = {"alembic_version"}


def normalize(sql: str | None, schema: str | None = None) -> str | None:
    if sql is None:
        return None
    text = re.sub(r"\s+", " ", sql).strip()
    text = text.replace('"', "")
    if schema:  # PostgreSQL qualifies names in some definitions: the schema is not compared
        text = re.sub(rf"\b{re.escape(schema)}\.", "", text)
    return re.sub(r"\( ", "(", re.sub(r" \)", ")", text))


def snapshot(conn: sa.Connection, *, exclude: set[str] = ALEMBIC_ONLY) -> dict[str, Any]:
    if conn.dialect.name == "postgresql":
        return _postgres(conn, exclude)
    return _sqlite(conn, exclude)


def _rows(conn: sa.Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.exec_driver_sql(sql)]


def _postgres(conn: sa.Connection, exclude: set[str]) -> dict[str, Any]:
    schema = "current_schema()"
    name = str(conn.exec_driver_sql("SELECT current_schema()").scalar())

    def norm(sql: str | None) -> str | None:
        return normalize(sql, name)

    tables = sorted(r[0] for r in _rows(conn, f"""
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = {schema}::regnamespace AND c.relkind IN ('r', 'p', 'v')
        """) if r[0] not in exclude)
    columns = {(r[0], r[1]): r[2:] for r in _rows(conn, f"""
        SELECT table_name, column_name, data_type, udt_name, character_maximum_length,
               numeric_precision, datetime_precision, is_nullable, column_default,
               is_generated, generation_expression
        FROM information_schema.columns WHERE table_schema = {schema}
        """) if r[0] not in exclude}
    indexes = {(r[0], r[1]): norm(r[2]) for r in _rows(conn, f"""
        SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = {schema}
        """) if r[0] not in exclude}
    constraints = {(r[0], r[1]): (r[2], norm(r[3]), r[4], r[5]) for r in _rows(conn, f"""
        SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid),
               condeferrable, convalidated
        FROM pg_constraint WHERE connamespace = {schema}::regnamespace
        """) if r[0] not in exclude}
    triggers = {(r[0], r[1]): (norm(r[2]), r[3]) for r in _rows(conn, f"""
        SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE NOT t.tgisinternal AND c.relnamespace = {schema}::regnamespace
        """) if r[0] not in exclude}
    functions = {r[0]: norm(r[1]) for r in _rows(conn, f"""
        SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               pg_get_functiondef(p.oid)
        FROM pg_proc p WHERE p.pronamespace = {schema}::regnamespace
        """)}
    return {"tables": tables, "columns": columns, "indexes": indexes,
            "constraints": constraints, "triggers": triggers, "functions": functions}


def _table_clauses(create_sql: str) -> list[str]:
    """The top-level comma-separated clauses of a CREATE TABLE body."""
    body = create_sql[create_sql.index("(") + 1:create_sql.rindex(")")]
    clauses: list[str] = []
    current: list[str] = []
    depth = 0
    for char in body:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            clauses.append("".join(current))
            current = []
        else:
            current.append(char)
    clauses.append("".join(current))
    return [c for c in (normalize(c) for c in clauses) if c]


def _sqlite(conn: sa.Connection, exclude: set[str]) -> dict[str, Any]:
    master = _rows(conn, "SELECT type, name, tbl_name, sql FROM sqlite_master "
                         "WHERE name NOT LIKE 'sqlite_%'")
    tables = sorted(name for kind, name, _t, _s in master
                    if kind in ("table", "view") and name not in exclude)
    columns: dict[tuple[str, str], tuple[Any, ...]] = {}
    constraints: dict[tuple[str, str], Any] = {}
    index_flags: dict[tuple[str, str], tuple[Any, ...]] = {}
    for table in tables:
        for _cid, name, type_, notnull, default, pk, hidden in _rows(
                conn, f"PRAGMA table_xinfo('{table}')"):
            columns[(table, name)] = (type_, notnull, default, pk, hidden)
        fks = _rows(conn, f"PRAGMA foreign_key_list('{table}')")
        constraints[(table, "foreign keys")] = sorted(fk[2:] for fk in fks)
        create_sql = next(s for k, n, _t, s in master if n == table)
        # Every clause as written: column definitions with inline constraints, and CHECK,
        # UNIQUE, PRIMARY KEY and FOREIGN KEY clauses.
        constraints[(table, "clauses")] = sorted(_table_clauses(create_sql))
        for _seq, name, unique, origin, partial in _rows(conn, f"PRAGMA index_list('{table}')"):
            columns_of = [r[2] for r in _rows(conn, f"PRAGMA index_info('{name}')")]
            # Automatic indexes (of a PRIMARY KEY or UNIQUE) carry generated names.
            key = name if not name.startswith("sqlite_autoindex") else f"auto:{columns_of}"
            index_flags[(table, key)] = (unique, origin, partial, columns_of)
    indexes = {(t, n): normalize(s) for k, n, t, s in master
               if k == "index" and s is not None and t not in exclude}
    triggers = {(t, n): normalize(s) for k, n, t, s in master
                if k == "trigger" and t not in exclude}
    return {"tables": tables, "columns": columns, "indexes": indexes,
            "index_flags": index_flags, "constraints": constraints, "triggers": triggers}


def differences(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """What differs, one readable line per object, for assertion messages."""
    found = []
    for part in sorted(set(left) | set(right)):
        a, b = left.get(part), right.get(part)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=repr):
                if a.get(key) != b.get(key):
                    found.append(f"{part} {key}: {a.get(key)!r} != {b.get(key)!r}")
        elif a != b:
            found.append(f"{part}: {a!r} != {b!r}")
    return found

"""PostgreSQL catalog reads and GRANT statements behind `followup db grants`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa


def quote_ident(name: str) -> str:
    """An SQL identifier, always double-quoted (so case and characters are kept exactly)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Role:
    name: str
    superuser: bool
    bypass_rls: bool


def roles(conn: sa.Connection, names: Sequence[str]) -> dict[str, Role]:
    """The roles among `names` that exist, by exact name, and those that match one of
    `names` only when folded to lower case (what an unquoted name becomes)."""
    wanted = sorted({*names, *(n.lower() for n in names)})
    rows = conn.execute(sa.text(
        "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname IN :names"
    ).bindparams(sa.bindparam("names", expanding=True)), {"names": wanted})
    return {r[0]: Role(r[0], bool(r[1]), bool(r[2])) for r in rows}


def database_name(conn: sa.Connection) -> str:
    return str(conn.execute(sa.text("SELECT current_database()")).scalar_one())


def table_schemas(conn: sa.Connection, tables: Sequence[str]) -> dict[str, str | None]:
    """The schema each table resolves to through the search_path (None: not found)."""
    query = sa.text(
        "SELECT n.nspname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(:name)")
    out: dict[str, str | None] = {}
    for table in tables:
        row = conn.execute(query, {"name": quote_ident(table)}).first()
        out[table] = None if row is None else str(row[0])
    return out


def table_owners(conn: sa.Connection, tables: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Owner (role name) of each (schema, table)."""
    query = sa.text(
        "SELECT pg_get_userbyid(c.relowner) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema "
        "AND c.relname = :table")
    return {table: str(conn.execute(query, {"schema": schema, "table": table}).scalar_one())
            for schema, table in tables}


@dataclass(frozen=True)
class TableGrant:
    schema: str
    table: str
    scheduler: tuple[str, ...]
    monitor: tuple[str, ...]
    why: str

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.table)}"


def grant_statements(*, database: str, schemas: Sequence[str], scheduler: str, monitor: str,
                     tables: Sequence[TableGrant], temporary: str, monitor_why: str
                     ) -> list[str]:
    """The GRANT script: connect, TEMPORARY and schema usage for both roles, then exactly
    the listed privileges per table (after revoking whatever
    either role held on those tables, so running it again, or after a change, leaves
    exactly this)."""
    both = f"{quote_ident(scheduler)}, {quote_ident(monitor)}"
    db = quote_ident(database)
    out = [f"GRANT CONNECT ON DATABASE {db} TO {both};",
           f"-- {temporary}",
           f"GRANT TEMPORARY ON DATABASE {db} TO {both};"]
    out += [f"GRANT USAGE ON SCHEMA {quote_ident(s)} TO {both};" for s in schemas]
    out.append("-- start from nothing on these tables, so the result is exactly what follows")
    out.append(f"REVOKE ALL ON TABLE {', '.join(t.qualified for t in tables)} FROM {both};")
    out.append(f"-- {monitor_why}")
    for t in tables:
        out.append(f"-- {t.table}: {t.why}")
        if t.scheduler:
            out.append(f"GRANT {', '.join(t.scheduler)} ON TABLE {t.qualified} TO "
                       f"{quote_ident(scheduler)};")
        if t.monitor:
            out.append(f"GRANT {', '.join(t.monitor)} ON TABLE {t.qualified} TO "
                       f"{quote_ident(monitor)};")
    return out


TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES",
                    "TRIGGER")


def table_privileges(conn: sa.Connection, role: str, tables: Sequence[TableGrant]
                     ) -> dict[str, set[str]]:
    """The privileges `role` holds on each table, however it got them (directly, through
    PUBLIC or a role it belongs to)."""
    query = sa.text("SELECT has_table_privilege(:role, :table, :privilege)")
    return {t.table: {p for p in TABLE_PRIVILEGES if conn.execute(
        query, {"role": role, "table": t.qualified, "privilege": p}).scalar()}
        for t in tables}


def has_database_privilege(conn: sa.Connection, role: str, database: str,
                           privilege: str) -> bool:
    return bool(conn.execute(sa.text("SELECT has_database_privilege(:r, :d, :p)"),
                             {"r": role, "d": database, "p": privilege}).scalar())


def has_schema_privilege(conn: sa.Connection, role: str, schema: str, privilege: str) -> bool:
    return bool(conn.execute(sa.text("SELECT has_schema_privilege(:r, :s, :p)"),
                             {"r": role, "s": schema, "p": privilege}).scalar())


def run_statements(conn: sa.Connection, statements: Sequence[str]) -> int:
    """Execute the statements (comments skipped) in the caller's transaction."""
    done = 0
    for statement in statements:
        if not statement.startswith("--"):
            conn.exec_driver_sql(statement)
            done += 1
    return done

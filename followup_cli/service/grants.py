"""`followup db grants`: least-privilege GRANTs for a scheduler role and a monitor role.

The scheduler role runs every pass and write command; the monitor role only reads. Neither
gets CREATE on the schema, ownership of a table, or anything outside followup's tables, so
neither can change the schema or read another schema. The table list comes from the
declared schema (db/schema.py) plus alembic_version, so a table added there is covered
without a change here: one without an entry in SCHEDULER_ACCESS gets full DML for the
scheduler (every command keeps working) until someone writes down what it really needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from followup_cli.errors import DatabaseError, InputError
from followup_cli.service.context import Context

if TYPE_CHECKING:
    from followup_cli.store.grants import TableGrant

ALL_DML = ("SELECT", "INSERT", "UPDATE", "DELETE")
READ = ("SELECT",)

# What the scheduler role does to each table, and why (docs/privacy.md repeats it).
# SELECT ... FOR UPDATE (claims, guard rows, skip-locked batches) needs UPDATE.
SCHEDULER_ACCESS: dict[str, tuple[tuple[str, ...], str]] = {
    "scheduled_followups": (ALL_DML, (
        "schedule, schedule import, scan-inactive insert; run-due claims and records "
        "outcomes, cancel, retry and db reencrypt update; cleanup and forget-user delete")),
    "ai_conversations": (("SELECT", "INSERT", "DELETE"), (
        "template choice and scan-inactive read; conversations import inserts; forget-user "
        "and cleanup --conversations-older-than-days delete (never updated)")),
    "ai_messages": (("SELECT", "INSERT", "DELETE"), (
        "emotion scores and last activity are read; conversations import inserts; "
        "forget-user and conversation retention delete (never updated)")),
    "followup_runs": (ALL_DML, (
        "every pass inserts its run record and updates it (heartbeat, finish); health "
        "reads it; cleanup deletes old ones")),
    "followup_user_guards": (ALL_DML, (
        "admission inserts a user's guard row and locks it (FOR UPDATE needs UPDATE); "
        "forget-user deletes it")),
    "alembic_version": (READ, (
        "every command checks the schema revision; only the owner runs db upgrade")),
}
UNREVIEWED = (ALL_DML, "not yet reviewed: full DML for the scheduler so every command works")
MONITOR_WHY = "the monitor role reads every table (health, stats, list, show, serve, dry runs)"
TEMPORARY_WHY = ("every creator of follow-ups stages its rows in a temporary table (private "
                 "to the session, gone at its end), which needs TEMPORARY on the database and "
                 "no CREATE on any schema; the monitor's scan-inactive --dry-run decides by "
                 "the same rules the same way, so it needs it too")

# Commands each role is meant to run (docs, help and the role tests follow this).
SCHEDULER_COMMANDS = ("run-due", "scan-inactive", "schedule post-event",
                      "schedule reengagement", "schedule import", "cancel", "retry",
                      "cleanup", "forget-user", "conversations import", "db reencrypt")
MONITOR_COMMANDS = ("health", "stats", "list", "show", "serve", "templates explain",
                    "db current", "every --dry-run")

# Names psql users type: letters, digits, _ $ . -; PostgreSQL's own limit is 63 bytes.
ROLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_$.\-]*")
RESERVED = {"public", "current_user", "session_user", "current_role", "none", "all"}


def table_names() -> list[str]:
    """Every table followup uses: the declared schema plus Alembic's version table."""
    from followup_cli.db.schema import metadata

    return [*sorted(metadata.tables), "alembic_version"]


def check_role_name(option: str, name: str) -> str:
    if (not ROLE_NAME.fullmatch(name) or len(name.encode()) > 63
            or name.lower() in RESERVED or name.lower().startswith("pg_")):
        raise InputError(f"{option}: {name!r} is not a usable role name (letters, digits, "
                         "_ $ . -, at most 63 bytes, not a reserved or pg_ name)")
    return name


@dataclass
class GrantPlan:
    scheduler: str
    monitor: str
    database: str
    schemas: list[str]
    tables: list[TableGrant]
    statements: list[str]
    warnings: list[str] = field(default_factory=list)
    applied: bool = False

    def script(self) -> str:
        head = [f"-- followup least-privilege grants for database {self.database}",
                f"-- scheduler role {self.scheduler}: passes and write commands; "
                f"monitor role {self.monitor}: reads only",
                "BEGIN;"]
        return "\n".join([*head, *self.statements, "COMMIT;"]) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "scheduler": self.scheduler, "monitor": self.monitor, "database": self.database,
            "schemas": self.schemas, "applied": self.applied,
            "tables": {t.table: {"schema": t.schema, "scheduler": list(t.scheduler),
                                 "monitor": list(t.monitor), "why": t.why}
                       for t in self.tables},
            "database_privileges": {"scheduler": ["CONNECT", "TEMPORARY"],
                                    "monitor": ["CONNECT", "TEMPORARY"]},
            "statements": [s for s in self.statements if not s.startswith("--")],
            "warnings": self.warnings,
        }


def plan_grants(ctx: Context, *, scheduler: str, monitor: str, apply: bool = False
                ) -> GrantPlan:
    """The GRANTs for two existing roles; executed in one transaction with `apply`."""
    from followup_cli.store import grants

    check_role_name("--scheduler", scheduler)
    check_role_name("--monitor", monitor)
    if scheduler == monitor:
        raise InputError("--scheduler and --monitor must be two different roles")
    if not ctx.db.is_postgres:
        raise InputError("db grants: the database is SQLite, which has no roles; grants are "
                         "for PostgreSQL (DATABASE_URL=postgresql://...)")
    names = table_names()
    with ctx.db.transaction() as conn:
        found = grants.roles(conn, [scheduler, monitor])
        for option, name in (("--scheduler", scheduler), ("--monitor", monitor)):
            if name not in found:
                folded = name.lower()
                hint = (f" (a role {folded!r} exists: unquoted names are folded to lower "
                        "case)" if folded in found else "")
                raise InputError(f"{option}: role {name!r} does not exist{hint}; create it "
                                 "first (CREATE ROLE ... LOGIN) and run this again")
        schemas = grants.table_schemas(conn, names)
        missing = [t for t, s in schemas.items() if s is None]
        if missing:  # ensure_schema passed, so only a hand-made change gets here
            raise InputError(f"db grants: table {missing[0]} is not in the search_path")
        tables = []
        for name in names:
            privileges, why = SCHEDULER_ACCESS.get(name, UNREVIEWED)
            tables.append(grants.TableGrant(str(schemas[name]), name, privileges, READ, why))
        schema_list = sorted({t.schema for t in tables})
        database = grants.database_name(conn)
        plan = GrantPlan(scheduler, monitor, database, schema_list, tables,
                         grants.grant_statements(
                             database=database, schemas=schema_list, scheduler=scheduler,
                             monitor=monitor, tables=tables, temporary=TEMPORARY_WHY,
                             monitor_why=MONITOR_WHY))
        owners = grants.table_owners(conn, [(t.schema, t.table) for t in tables])
        for name in (scheduler, monitor):
            role = found[name]
            if role.superuser:
                plan.warnings.append(f"role {name!r} is a superuser: no grant limits it")
            owned = sorted(t for t, owner in owners.items() if owner == name)
            if owned:
                plan.warnings.append(f"role {name!r} owns {', '.join(owned)}: an owner can "
                                     "alter and drop its tables; make another role the owner")
            for schema in schema_list:
                if grants.has_schema_privilege(conn, name, schema, "CREATE"):
                    plan.warnings.append(
                        f"role {name!r} may create objects in schema {schema!r} (PostgreSQL "
                        f"before 15 grants that to PUBLIC): REVOKE CREATE ON SCHEMA "
                        f"{grants.quote_ident(schema)} FROM PUBLIC")
        if apply:
            grants.run_statements(conn, plan.statements)
            # PostgreSQL only warns when a role that is not the owner grants nothing: check
            # the result, and roll back unless every privilege is in place.
            missing, extra = _compare(conn, plan)
            if missing:
                raise DatabaseError(
                    f"the grants did not take effect ({missing[0]}"
                    f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}): run "
                    "followup db grants --apply as the owner of followup's tables")
            plan.warnings += extra
            plan.applied = True
    return plan


def _compare(conn: Any, plan: GrantPlan) -> tuple[list[str], list[str]]:
    """(privileges missing, privileges beyond the plan) after applying it."""
    from followup_cli.store import grants

    missing: list[str] = []
    extra: list[str] = []
    for role, wanted_db, kind in ((plan.scheduler, ("CONNECT", "TEMPORARY"), "scheduler"),
                                  (plan.monitor, ("CONNECT", "TEMPORARY"), "monitor")):
        missing += [f"{p} on database {plan.database} for {role}" for p in wanted_db
                    if not grants.has_database_privilege(conn, role, plan.database, p)]
        missing += [f"USAGE on schema {s} for {role}" for s in plan.schemas
                    if not grants.has_schema_privilege(conn, role, s, "USAGE")]
        held = grants.table_privileges(conn, role, plan.tables)
        for table in plan.tables:
            wanted = set(getattr(table, kind))
            missing += [f"{p} on {table.table} for {role}" for p in sorted(wanted - held[
                table.table])]
            more = sorted(held[table.table] - wanted)
            if more:
                extra.append(f"role {role!r} also holds {', '.join(more)} on {table.table} "
                             "(through PUBLIC or a role it belongs to)")
    return missing, extra

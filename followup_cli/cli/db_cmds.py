"""`followup db ...`: the schema (upgrade, current), re-encryption and access grants."""

from __future__ import annotations

from typing import Annotated

import typer

from followup_cli.cli.common import JsonOpt, context, exit_with, output, settings

app = typer.Typer(help="Database: migrations, re-encryption of messages, role grants.",
                  no_args_is_help=True, rich_markup_mode="markdown")


@app.command("upgrade")
def upgrade(json: JsonOpt = False) -> None:
    """Apply every pending migration (safe to run on several hosts at once).

    A database migrated by a newer followup is left alone: exit 4, saying which release
    migrated it and whether this one still works with it.

    Example:

        DATABASE_URL=postgresql://app:secret@db:5432/app followup db upgrade
    """
    out = output(json)
    from followup_cli.db.engine import Database
    from followup_cli.db.migrate import upgrade as run_upgrade

    cfg = settings()
    db = Database(cfg.database_url)
    before = db.schema_state()
    run_upgrade(db)
    after = db.schema_state()
    doc = {"database": cfg.database_display, "from": before.revision, "to": after.revision,
           "head": after.head, "changed": before.revision != after.revision}
    if out.json_mode:
        out.json(doc)
    elif not doc["changed"]:
        out.line(f"already at {after.revision}: {cfg.database_display}")
    else:
        out.line(f"upgraded {before.revision or 'empty database'} -> {after.revision}: "
                 f"{cfg.database_display}")


@app.command("current")
def current(json: JsonOpt = False) -> None:
    """Show the schema revision of the database and the one this followup needs.

    Exit 0 when this followup can use the schema: it is at the head, or newer and recorded
    as compatible with this release (a rolling upgrade in progress). Exit 4 otherwise: run
    `followup db upgrade` when it is older, upgrade followup when it is newer. Never
    creates a database at an explicit DATABASE_URL (without one, the embedded database is
    created on first use, as by every command).

    Example:

        followup db current --json
    """
    out = output(json)
    from followup_cli.db.engine import Database
    from followup_cli.errors import ExitCode

    cfg = settings()
    db = Database(cfg.database_url, create=cfg.database_is_default)
    state = db.schema_state()
    doc = {"database": cfg.database_display, **state.to_json()}
    if out.json_mode:
        out.json(doc)
    else:
        verdict = {"current": "yes", "empty": "no: run followup db upgrade",
                   "outdated": "no: run followup db upgrade",
                   "newer_compatible": f"newer (followup {state.migrated_by}), compatible",
                   }.get(state.state, "newer: upgrade followup on this host")
        out.fields([("database", cfg.database_display), ("current", state.revision or "none"),
                    ("head", state.head), ("up to date", verdict)])
    if not state.usable:
        raise typer.Exit(ExitCode.DATABASE)


@app.command("reencrypt")
def reencrypt(
    batch_size: Annotated[int, typer.Option(
        "--batch-size", metavar="N", help="Rows per transaction, 1-10000.")] = 500,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only count what would be rewritten (and what no key opens).")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Encrypt every stored message with the first key of FOLLOWUP_ENCRYPTION_KEY.

    Rewrites each message_content and trigger_data custom_message that is not sealed with
    the first key (plain rows included), in batches of --batch-size rows, each its own
    transaction; on PostgreSQL rows a delivery pass holds are skipped, never waited for.
    Safe to run again and beside passes. Rotate a key: put the new key first and keep the
    old ones (FOLLOWUP_ENCRYPTION_KEY=new,old), run this until it exits 0, then drop the
    old key. Exit 0 when every row is under the first key; 1 when rows were locked (run it
    again), no listed key opens them (they are named and left as they are), or, with
    --dry-run, rows would be rewritten; 2 without a key; 4 when the database cannot be
    used. --dry-run writes nothing and never creates a database.

    Example:

        FOLLOWUP_ENCRYPTION_KEY=$NEW_KEY,$OLD_KEY followup db reencrypt

        followup db reencrypt --dry-run --json
    """
    out = output(json)
    from followup_cli.service.reencrypt import reencrypt as run_reencrypt

    ctx = context(read_only=dry_run)
    with out.progress("re-encrypting") as progress:
        result = run_reencrypt(ctx, batch_size=batch_size, dry_run=dry_run,
                               progress=progress)
    if out.json_mode:
        out.json(result.to_json())
    else:
        verb = "would rewrite" if result.dry_run else "rewrote"
        out.line(f"reencrypt under key {result.key_id}: {verb} {result.rewritten} of "
                 f"{result.total} rows with message text; {result.already_current} already "
                 "under it")
        if result.skipped_locked:
            out.line(f"{result.skipped_locked} rows were locked by another session and "
                     f"left as they are: run it again ({', '.join(result.locked_ids)})",
                     style="yellow")
        if result.undecryptable:
            out.line(f"{result.undecryptable} rows are encrypted with a key that is not in "
                     "FOLLOWUP_ENCRYPTION_KEY (or damaged) and were left as they are: "
                     f"{', '.join(result.undecryptable_ids)}", style="red")
    exit_with(0 if result.complete else 1)


@app.command("grants")
def grants(
    scheduler: Annotated[str, typer.Option(
        "--scheduler", metavar="ROLE", show_default=False,
        help="Existing role that runs the passes and write commands (cron, scripts).")],
    monitor: Annotated[str, typer.Option(
        "--monitor", metavar="ROLE", show_default=False,
        help="Existing role that only reads (health, stats, list, show, serve, dry runs).")],
    apply: Annotated[bool, typer.Option(
        "--apply", help="Execute the statements (in one transaction) instead of printing "
                        "them.")] = False,
    json: JsonOpt = False,
) -> None:
    """Print (or apply) least-privilege GRANTs for a scheduler role and a monitor role.

    PostgreSQL only. The scheduler role gets exactly the SELECT/INSERT/UPDATE/DELETE each
    of followup's tables needs, TEMPORARY on the database (bulk passes stage rows in a
    temporary table) and USAGE on the schema; the monitor role gets SELECT. Neither gets
    CREATE on a schema or owns a table, so neither can change the schema; neither gets
    anything on other tables. Both roles must exist (create them with CREATE ROLE ... LOGIN).
    Run it as the owner of the tables (the role that runs `followup db upgrade`); without
    --apply the script goes to stdout for `psql -f`. Warnings (a superuser role, an owner,
    CREATE left to PUBLIC) go to stderr. Exit 2 for an invalid or missing role or a SQLite
    database, 4 when the database refuses (not the owner) or cannot be used.

    Example:

        followup db grants --scheduler followup_scheduler --monitor followup_monitor > grants.sql

        followup db grants --scheduler followup_scheduler --monitor followup_monitor --apply
    """
    out = output(json)
    from followup_cli.service.grants import plan_grants

    plan = plan_grants(context(), scheduler=scheduler, monitor=monitor, apply=apply)
    if out.json_mode:
        out.json(plan.to_json())
    elif apply:
        out.line(f"applied the grants for scheduler {plan.scheduler} and monitor "
                 f"{plan.monitor} on database {plan.database}")
    else:
        out.stream.write(plan.script())
        out.stream.flush()
    for warning in plan.warnings:
        typer.echo(f"followup: warning: {warning}", err=True)

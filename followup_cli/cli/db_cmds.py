"""`followup db upgrade|current`: the schema, through Alembic."""

from __future__ import annotations

import typer

from followup_cli.cli.common import JsonOpt, output, settings

app = typer.Typer(help="Database schema: apply migrations, show the revision.",
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
    creates a database.

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

"""`followup db upgrade|current`: the schema, through Alembic."""

from __future__ import annotations

import typer

from followup_cli.cli.common import JsonOpt, output, settings

app = typer.Typer(help="Database schema: apply migrations, show the revision.",
                  no_args_is_help=True, rich_markup_mode="markdown")


@app.command("upgrade")
def upgrade(json: JsonOpt = False) -> None:
    """Apply every pending migration (safe to run on several hosts at once).

    Example:

        DATABASE_URL=postgresql://app:secret@db:5432/app followup db upgrade
    """
    out = output(json)
    from followup_cli.db.engine import Database
    from followup_cli.db.migrate import upgrade as run_upgrade
    from followup_cli.db.schema import SCHEMA_REVISION

    cfg = settings()
    db = Database(cfg.database_url)
    before = db.current_revision()
    run_upgrade(db)
    after = db.current_revision()
    doc = {"database": cfg.database_display, "from": before, "to": after,
           "head": SCHEMA_REVISION, "changed": before != after}
    if out.json_mode:
        out.json(doc)
    elif before == after:
        out.line(f"already at {after}: {cfg.database_display}")
    else:
        out.line(f"upgraded {before or 'empty database'} -> {after}: {cfg.database_display}")


@app.command("current")
def current(json: JsonOpt = False) -> None:
    """Show the schema revision of the database and the one this followup needs.

    Exit 4 when they differ (run `followup db upgrade`).

    Example:

        followup db current --json
    """
    out = output(json)
    from followup_cli.db.engine import Database
    from followup_cli.db.schema import SCHEMA_REVISION
    from followup_cli.errors import ExitCode

    cfg = settings()
    revision = Database(cfg.database_url).current_revision()
    doc = {"database": cfg.database_display, "current": revision, "head": SCHEMA_REVISION,
           "up_to_date": revision == SCHEMA_REVISION}
    if out.json_mode:
        out.json(doc)
    else:
        out.fields([("database", cfg.database_display), ("current", revision or "none"),
                    ("head", SCHEMA_REVISION),
                    ("up to date", "yes" if doc["up_to_date"] else "no: run followup db upgrade")])
    if not doc["up_to_date"]:
        raise typer.Exit(ExitCode.DATABASE)

"""The `followup` command: root options, sub-commands, and the one place where errors become
messages and exit codes."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from followup_cli import __version__
from followup_cli.cli import db_cmds, delivery_cmds, ops_cmds, passes_cmds, schedule_cmds
from followup_cli.cli.common import STATE
from followup_cli.errors import ExitCode, FollowupError

ROOT_HELP = """\
Schedule and deliver customer follow-up messages from cron.

A post-event follow-up a day after a booking, a re-engagement message to users inactive
for 30 days, each worded by a template chosen from the emotion of the user's recent
conversation. Cron runs `followup run-due` every minute and `followup scan-inactive` every
morning; operators use the other commands.

Example:

    followup demo

    followup schedule post-event --user-id u42 --conversation-id c7 --event-date 2026-11-14T18:00

    DATABASE_URL=postgresql://app:secret@db:5432/app followup run-due --json
"""


def _epilog() -> str:
    from followup_cli.settings import SETTINGS_DOC, default_database_path

    lines = [f"Default database: sqlite:///{default_database_path()}", "", "Settings "
             "(environment variables):", ""]
    lines += [f"  {name} (default: {default}): {meaning}" for name, default, meaning
              in SETTINGS_DOC]
    lines += ["", "Exit codes: 0 ok · 1 runtime failure / not healthy · 2 invalid input or "
              "settings · 3 refused by a rule · 4 database unreachable, schema not migrated "
              "or newer, or the operation refused (privilege, read-only, row locked)"]
    return "  \n".join(lines)


class FollowupGroup(TyperGroup):
    """Turns followup's errors into one line on stderr and the documented exit code (a
    traceback only with --verbose); with --json, stdout still gets one JSON document."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta["followup.args"] = tuple(args)  # seen by every sub-command's context
        return super().parse_args(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # The settings epilog (with the data-directory path) is built only for --help, so
        # cron passes do not pay for it at start-up.
        if not self.epilog:
            self.epilog = _epilog()
        super().format_help(ctx, formatter)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except FollowupError as error:
            if STATE.verbose:
                logging.getLogger("followup").exception("failed")
            _report(str(error), error.exit_code)
        except typer.TyperException as error:
            # A usage error (exit 2): the usage text goes to stderr as usual, and a script
            # that asked for --json still gets its one document on stdout.
            if "--json" in ctx.meta.get("followup.args", ()) and hasattr(error,
                                                                          "format_message"):
                from followup_cli.cli.output import dumps

                typer.echo(dumps({"error": {"message": error.format_message(),
                                            "exit_code": int(getattr(error, "exit_code", 2))}}))
            raise
        except (typer.Exit, typer.Abort):
            raise  # --help, and our own typer.Exit codes
        except BrokenPipeError:
            raise  # the reader went away (`| head`): handled quietly in main()
        except KeyboardInterrupt:
            _report("interrupted", ExitCode.FAILURE)
        except Exception as error:  # a bug: say so briefly, the traceback with --verbose
            if STATE.verbose:
                logging.getLogger("followup").exception("internal error")
            _report(f"internal error: {type(error).__name__}: {error} (run with --verbose "
                    "for the traceback)", ExitCode.FAILURE)


def _report(message: str, code: int) -> NoReturn:
    if STATE.json_mode:
        from followup_cli.cli.output import dumps

        typer.echo(dumps({"error": {"message": message, "exit_code": int(code)}}))
    typer.echo(f"followup: error: {message}", err=True)
    raise typer.Exit(int(code))


app = typer.Typer(
    cls=FollowupGroup,
    name="followup",
    help=ROOT_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"followup {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    database_url: Annotated[str | None, typer.Option(
        "--database-url", metavar="URL", show_default=False,
        help="Database (env DATABASE_URL); default: the embedded SQLite file.")] = None,
    timezone: Annotated[str | None, typer.Option(
        "--timezone", metavar="ZONE",
        help="IANA zone for naive times, 'today', send windows (env SCHEDULER_TIMEZONE).")
    ] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Log progress to stderr and show tracebacks.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    STATE.overrides.update({"DATABASE_URL": database_url, "SCHEDULER_TIMEZONE": timezone})
    STATE.verbose = verbose
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)


app.add_typer(schedule_cmds.app, name="schedule")
schedule_cmds.register(app)
app.add_typer(db_cmds.app, name="db")
delivery_cmds.register(app)  # run-due
passes_cmds.register(app)  # scan-inactive, schedule import, conversations import, demo
ops_cmds.register(app)  # health, stats, cleanup, list, show, retry, forget-user, templates


def _configure_logging() -> None:
    root_logger = logging.getLogger()
    if not any(getattr(h, "_followup", False) for h in root_logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._followup = True  # type: ignore[attr-defined]
        root_logger.addHandler(handler)
    root_logger.setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    _configure_logging()
    try:
        app(args=argv, prog_name="followup")
    except BrokenPipeError:
        # Python's advice: point stdout at devnull so the interpreter's final flush is quiet.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(ExitCode.FAILURE)

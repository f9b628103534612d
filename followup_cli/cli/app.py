"""The `followup` command: root options, sub-commands, and the one place where errors become
messages and exit codes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from followup_cli import __version__
from followup_cli.cli import (
    db_cmds,
    delivery_cmds,
    ops_cmds,
    passes_cmds,
    schedule_cmds,
    serve_cmds,
)
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
              "or newer, or the operation refused (privilege, read-only, row locked) · "
              "130 interrupted (Ctrl-C)"]
    return "  \n".join(lines)


INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def _set_verbose(_ctx: Any, _param: Any, value: bool) -> bool:
    if value:
        STATE.verbose = True
        logging.getLogger().setLevel(logging.INFO)
    return value


def _verbose_option() -> Any:
    from typer.core import TyperOption

    return TyperOption(param_decls=["--verbose", "-v"], is_flag=True, default=False,
                       expose_value=False, callback=_set_verbose,
                       help="Log progress to stderr and show tracebacks.")


def _add_verbose(command: Any) -> None:
    """`-v/--verbose` on every command as well as before it (`followup run-due -v`)."""
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for sub in subcommands.values():
            _add_verbose(sub)
    elif not any("--verbose" in getattr(p, "opts", ()) for p in command.params):
        command.params.append(_verbose_option())


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_requested(args: list[str]) -> bool:
    return "--json" in (args[:args.index("--")] if "--" in args else args)


class FollowupGroup(TyperGroup):
    """Turns followup's errors into one line on stderr and the documented exit code (a
    traceback only with --verbose); with --json, stdout also gets one JSON document
    `{"error": {"message", "exit_code"}}`. Usage errors and Ctrl-C included."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            _add_verbose(command)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # The settings epilog (with the data-directory path) is built only for --help, so
        # cron passes do not pay for it at start-up.
        if not self.epilog:
            self.epilog = _epilog()
        super().format_help(ctx, formatter)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        from typer._click.exceptions import ClickException, NoArgsIsHelpError

        argv = list(sys.argv[1:] if args is None else args)
        json_mode = _json_requested(argv)
        bad = next((arg for arg in argv if not _is_utf8(arg)), None)
        if bad is not None:
            # Python hands undecodable bytes over as lone surrogates, which no database
            # or file can store: refused here, before any command reads them.
            try:  # the bytes as given, where Python kept them (argv)
                shown = bad.encode("utf-8", "surrogateescape").decode("utf-8",
                                                                     "backslashreplace")
            except UnicodeEncodeError:  # any other lone surrogate (in-process callers)
                shown = bad.encode("utf-8", "backslashreplace").decode("utf-8")
            code = _error_line(f"argument {shown!r} is not UTF-8 text", ExitCode.INVALID,
                               json_mode)
            if not standalone_mode:
                return code
            sys.exit(code)
        try:
            # Not standalone: Typer would draw usage errors in a five-line box.
            code = super().main(args=argv, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        except NoArgsIsHelpError as error:
            text = error.format_message()  # `followup` alone: the help, as before (rich
            if text:  # help is printed while it is formatted)
                typer.echo(text)
            code = error.exit_code
        except ClickException as error:
            code = _usage_error(error, json_mode)
        except typer.Abort:  # Ctrl-C or end of input at a question
            if sys.stderr.isatty():
                typer.echo("", err=True)  # off the question's line
            code = _error_line("interrupted", INTERRUPTED, json_mode)
        code = code if isinstance(code, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)

    def invoke(self, ctx: Any) -> Any:
        import os

        from followup_cli import redact

        # Secrets of the settings in force are masked in everything written to stderr
        # (log lines, tracebacks, error lines) and in error documents.
        redact.REDACTOR.clear()  # one command per process; in tests, one per invocation
        redact.remember_environment(os.environ, {"DATABASE_URL": ctx.params.get("database_url")})
        with redact.redacting_stderr():
            return self._invoke(ctx)

    def _invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except FollowupError as error:
            if STATE.verbose:
                logging.getLogger("followup").exception("failed")
            _report(str(error), error.exit_code)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # --help, our own exit codes, usage errors (reported by main())
        except BrokenPipeError:
            raise  # the reader went away (`| head`): handled quietly in main()
        except KeyboardInterrupt:
            _report("interrupted", INTERRUPTED)
        except Exception as error:  # a bug: say so briefly, the traceback with --verbose
            if STATE.verbose:
                logging.getLogger("followup").exception("internal error")
            _report(f"internal error: {type(error).__name__}: {error} (run with --verbose "
                    "for the traceback)", ExitCode.FAILURE)


def _usage_error(error: Any, json_mode: bool) -> int:
    message = error.format_message()
    context = getattr(error, "ctx", None)
    if context is not None and message and "--help" not in message:
        message = f"{message.rstrip('.')} (see `{context.command_path} --help`)"
    return _error_line(message, int(getattr(error, "exit_code", ExitCode.INVALID)),
                       json_mode)


def _error_line(message: str, code: int, json_mode: bool) -> int:
    """The one error shape: a JSON document on stdout (with --json) and one line on stderr,
    secrets of the settings in force masked in both."""
    from followup_cli.redact import scrub

    message = scrub(message)
    if json_mode:
        from followup_cli.cli.output import dumps

        typer.echo(dumps({"error": {"message": message, "exit_code": int(code)}}))
    typer.echo(f"followup: error: {message}", err=True)
    return code


def _report(message: str, code: int) -> NoReturn:
    raise typer.Exit(_error_line(message, code, STATE.json_mode))


def _new_app() -> typer.Typer:
    return typer.Typer(
        cls=FollowupGroup,
        name="followup",
        help=ROOT_HELP,
        no_args_is_help=True,
        add_completion=True,  # --install-completion / --show-completion
        pretty_exceptions_enable=False,
        rich_markup_mode="markdown",
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )


app = _new_app()


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
    _warn_about_the_environment()


def _warn_about_the_environment() -> None:
    """A misspelled setting would silently leave its default in force: say so, every time."""
    import os

    from followup_cli.settings import suspicious_variables

    for warning in suspicious_variables(os.environ):
        typer.echo(f"followup: warning: {warning}", err=True)


app.add_typer(schedule_cmds.app, name="schedule")
schedule_cmds.register(app)
app.add_typer(db_cmds.app, name="db")
delivery_cmds.register(app)  # run-due
passes_cmds.register(app)  # scan-inactive, schedule import, conversations import, demo
ops_cmds.register(app)  # health, stats, cleanup, list, show, retry, forget-user, templates
serve_cmds.register(app)  # serve


def _configure_logging() -> None:
    root_logger = logging.getLogger()
    if not any(getattr(h, "_followup", False) for h in root_logger.handlers):
        from followup_cli.redact import StderrHandler

        handler = StderrHandler()  # writes to the current sys.stderr, every record scrubbed
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._followup = True  # type: ignore[attr-defined]
        root_logger.addHandler(handler)
    root_logger.setLevel(logging.WARNING)


# Root options that take a value: the command name is the first word after the options.
_VALUED_ROOT_OPTIONS = ("--database-url", "--timezone")


def _named_command(args: Sequence[str]) -> str | None:
    """The command `args` invoke (`schedule`, `run-due`), or None when they ask for
    something else first (help, the version, an option this app does not know)."""
    words = iter(args)
    for word in words:
        if word in _VALUED_ROOT_OPTIONS:
            next(words, None)
        elif word in ("-v", "--verbose") or word.startswith(
                tuple(f"{o}=" for o in _VALUED_ROOT_OPTIONS)):
            continue
        else:
            return None if word.startswith("-") else word
    return None


def app_for(args: Sequence[str]) -> typer.Typer:
    """`app` with only the command `args` name, when they name one: Typer evaluates every
    registered command's signature to build the command line (about 30 ms of each cron
    process for 55 commands), though one runs. Help, the version, completion, a mistyped
    command: the whole app, which lists and suggests every command."""
    import os

    name = _named_command(args)
    if name is None or any(k.endswith("_COMPLETE") for k in os.environ):
        return app
    commands = [c for c in app.registered_commands if c.name == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    lean = _new_app()
    lean.registered_callback = app.registered_callback
    lean.registered_commands = commands
    lean.registered_groups = groups
    return lean


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    _configure_logging()
    try:
        app_for(sys.argv[1:] if argv is None else argv)(args=argv, prog_name="followup")
    except KeyboardInterrupt:  # between commands' own handling (start-up, shutdown)
        sys.stderr.write("followup: error: interrupted\n")
        sys.exit(INTERRUPTED)
    except BrokenPipeError:
        # Python's advice: point stdout at devnull so the interpreter's final flush is quiet.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(ExitCode.FAILURE)

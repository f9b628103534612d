"""`followup serve`: the read-only HTTP endpoint for monitors and Prometheus."""

from __future__ import annotations

from typing import Annotated

import typer

from followup_cli.cli.common import JsonOpt, output, settings

DEFAULT_BIND = "127.0.0.1:8000"


def serve(
    bind: Annotated[str, typer.Option(
        "--bind", metavar="HOST:PORT",
        help="Address to listen on; port 0 picks a free one (see the --json line).")
    ] = DEFAULT_BIND,
    json: JsonOpt = False,
) -> None:
    """Answer monitors over HTTP: the health check and the Prometheus metrics, read-only.

    GET /api/scheduler/health answers the `followup health --json` document, 200 when
    healthy or disabled and 503 otherwise (also when the database cannot be read, with its
    `error`). GET /metrics answers the Prometheus text of `followup stats --format
    prometheus`. Any other method is 405, any other path 404. Each request reads in its own
    short read-only transaction; serve never creates, migrates or writes the database, so
    run it as the read-only monitor role (`followup db grants`). SIGTERM or Ctrl-C stops it
    cleanly (exit 0). With --json it prints one JSON line with the bound address once it
    listens, and nothing more; access lines go to stderr with --verbose. Exit 2 for a bad
    --bind, 1 when the address cannot be bound, 4 when an explicit SQLite file is missing.

    Example:

        followup serve

        followup serve --bind 0.0.0.0:9464 --json

        curl -fsS http://127.0.0.1:8000/api/scheduler/health
    """
    out = output(json)
    import signal

    from followup_cli.service.serving import (
        HEALTH_PATH,
        METRICS_PATH,
        open_server,
        parse_bind,
    )

    host, port = parse_bind(bind)
    server = open_server(settings(), host, port)
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda _signum, _frame: server.stop())
        if out.json_mode:
            import json as jsonlib

            bound_host, bound_port = server.address
            out.stream.write(jsonlib.dumps({
                "listening": server.url, "host": bound_host, "port": bound_port,
                "health": server.url + HEALTH_PATH, "metrics": server.url + METRICS_PATH,
            }) + "\n")
            out.stream.flush()
        else:
            out.line(f"serving {server.url}{HEALTH_PATH} and {METRICS_PATH} (read-only); "
                     "Ctrl-C or SIGTERM stops")
            out.stream.flush()
        server.serve_forever(poll_interval=0.25)
    finally:
        server.server_close()
        server.app.ctx.close()


def register(root: typer.Typer) -> None:
    """Add this module's command to the root app."""
    root.command("serve")(serve)

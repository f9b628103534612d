"""The facts a figure needs beside it: date, machine, server, interpreter, versions."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from contextlib import suppress
from datetime import UTC, datetime
from importlib import metadata

from bench.install import Installed
from bench.pgdb import Server

MEASURED = ("followup", "sqlalchemy", "psycopg2-binary", "alembic", "typer", "httpx",
            "httpcore", "cryptography")
PEERS = ("apscheduler", "procrastinate", "psycopg", "psycopg-pool", "psycopg2-binary")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def versions_in(python: str, names: tuple[str, ...]) -> dict[str, str]:
    script = ("import json, sys\nfrom importlib import metadata\nout = {}\n"
              "for n in sys.argv[1:]:\n    try: out[n] = metadata.version(n)\n"
              "    except metadata.PackageNotFoundError: pass\nprint(json.dumps(out))")
    done = subprocess.run([python, "-c", script, *names], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def local_versions(names: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for name in names:
        with suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def describe(server: Server, followup: Installed) -> list[str]:
    """Markdown bullet lines."""
    load = os.getloadavg()
    measured = versions_in(followup.python, MEASURED)
    peers = local_versions(PEERS)
    settings = ", ".join(f"{k}={v}" for k, v in server.settings().items())
    python = subprocess.run([followup.python, "-c", "import sys; print(sys.version.split()[0])"],
                            capture_output=True, text=True).stdout.strip()
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average at start "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        f"- PostgreSQL {server.version()} on {server.base.split('@')[-1]} ({settings})",
        f"- Python {python or sys.version.split()[0]} (measured package); harness Python "
        f"{sys.version.split()[0]}",
        f"- followup: {followup.version}, {followup.origin}, installed and compiled",
        "- Measured with: " + ", ".join(f"{k} {v}" for k, v in measured.items()
                                         if k != "followup"),
        "- Peers: " + ", ".join(f"{k} {v}" for k, v in peers.items()),
    ]

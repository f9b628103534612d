"""The `followup` under test: a wheel built from this checkout, installed into a scratch
virtualenv and compiled, the way an operator's cron runs it. The editable install is not
measured: with PYTHONDONTWRITEBYTECODE=1 (set on this machine) every process would compile
the package from source."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.measure import BenchFailure

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Installed:
    followup: str  # the console script
    python: str  # the interpreter of the same environment (for the API scenario)
    version: str
    origin: str


def _quiet(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchFailure(f"{what} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def commit() -> str:
    described = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                               capture_output=True, text=True)
    return described.stdout.strip() or "unknown"


def build(workdir: Path) -> Installed:
    dist = workdir / "dist"
    _quiet([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist),
            str(REPO)], "building the followup wheel")
    wheel = next(dist.glob("followup-*.whl"))
    venv = workdir / "venv"
    _quiet([sys.executable, "-m", "venv", str(venv)], "creating the scratch virtualenv")
    _quiet([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
            "--disable-pip-version-check", str(wheel)], "installing the wheel")
    site = _quiet([str(venv / "bin" / "python"), "-c",
                   "import followup_cli, os; print(os.path.dirname(followup_cli.__file__))"],
                  "locating the installed package").strip()
    _quiet([str(venv / "bin" / "python"), "-m", "compileall", "-q", site],
           "compiling the installed package")
    return installed(str(venv / "bin" / "followup"), origin=f"wheel of {commit()}")


def installed(followup: str, *, origin: str = "given") -> Installed:
    script = Path(followup)
    if not script.is_file():
        raise BenchFailure(f"--followup {followup}: no such file")
    python = script.parent / "python"
    version = _quiet([str(script), "--version"], "followup --version").strip()
    return Installed(str(script), str(python) if python.exists() else sys.executable,
                     version, origin)

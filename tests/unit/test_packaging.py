"""Packaging facts that once went wrong: the package list kept by hand, one version source,
a license the build backend can read, pinned lint tools.

Before: `requires = ["setuptools>=69"]` (69.5 and 76.1 refuse `license = "MIT"`; 77 is the
first that builds this file), no LICENSE file, the version written in pyproject.toml and
in followup_cli/__init__.py, ruff and mypy floating (`>=`), and nothing checked that the
hand-kept package list covered every package. .ci/run also builds the wheel and checks
its contents (.ci/check_wheel.py).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import followup_cli

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def package_dirs() -> dict[str, Path]:
    """Every directory holding Python modules, by the package name it ships as."""
    found = {}
    for folder, prefix in ((ROOT / "followup_cli", "followup_cli"),
                           (ROOT / "alembic", "followup_cli.alembic")):
        for module in folder.rglob("*.py"):
            if "__pycache__" in module.parts:
                continue
            parts = module.parent.relative_to(folder).parts
            found[".".join((prefix, *parts))] = module.parent
    return found


def test_every_package_directory_is_listed() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    missing = set(package_dirs()) - listed
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {
        "followup_cli.alembic": "alembic"}


def test_one_version_source() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "followup_cli.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", followup_cli.__version__)


def test_license_and_build_floor() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "followup contributors" in text
    [requirement] = PYPROJECT["build-system"]["requires"]
    floor = re.fullmatch(r"setuptools>=(\d+)", requirement)
    assert floor is not None and int(floor.group(1)) >= 77


def test_lint_tools_are_pinned() -> None:
    lint = PYPROJECT["project"]["optional-dependencies"]["lint"]
    names = {re.split(r"[=<>!~ ]", pin)[0] for pin in lint}
    assert {"ruff", "mypy"} <= names
    for pin in lint:
        assert re.fullmatch(r"[\w-]+==[\w.]+", pin), pin

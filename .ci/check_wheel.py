"""Fail when the built wheel lacks a module or a migration of the checkout.

The package list in pyproject.toml is kept by hand (alembic/ is mapped into the package),
so CI checks its result: every followup_cli/**/*.py and every file of alembic/ (as
followup_cli/alembic/...) must be in the wheel, and so must the LICENSE.

Usage: python .ci/check_wheel.py dist/followup-*.whl
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def expected() -> set[str]:
    names = {p.relative_to(ROOT).as_posix() for p in (ROOT / "followup_cli").rglob("*.py")
             if "__pycache__" not in p.parts}
    names |= {"followup_cli/" + p.relative_to(ROOT).as_posix()
              for p in (ROOT / "alembic").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    return names


def main(wheel: str) -> int:
    with zipfile.ZipFile(wheel) as archive:
        held = set(archive.namelist())
    missing = sorted(expected() - held)
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in held):
        missing.append("LICENSE (in .dist-info/licenses/)")
    for name in missing:
        print(f"{wheel}: missing {name}", file=sys.stderr)
    if not missing:
        print(f"{wheel}: holds all {len(expected())} modules and migrations")
    return 1 if missing else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    raise SystemExit(main(sys.argv[1]))

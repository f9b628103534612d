"""The cheap reading of alembic/versions: head, order, declarations, and the mistakes it
refuses (a branch, a missing or malformed compatibility declaration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from followup_cli.db import compat

TEMPLATE = '''"""{doc}"""
revision = "{rev}"
down_revision = {down}
branch_labels = None
{declaration}
'''


def write(folder: Path, rev: str, down: str | None,
          declaration: str = 'oldest_compatible_release = "0.1.0"') -> None:
    (folder / "versions").mkdir(parents=True, exist_ok=True)
    (folder / "versions" / f"{rev}.py").write_text(TEMPLATE.format(
        doc=rev, rev=rev, down=repr(down), declaration=declaration), encoding="utf-8")


def test_order_and_head_come_from_the_files(tmp_path: Path) -> None:
    write(tmp_path, "0002_b", "0001_a")
    write(tmp_path, "0001_a", None)
    write(tmp_path, "0003_c", "0002_b", 'oldest_compatible_release = "0.3.0"')
    found = compat.migrations(tmp_path)
    assert [m.revision for m in found] == ["0001_a", "0002_b", "0003_c"]
    assert found[-1].oldest_compatible_release == "0.3.0"


@pytest.mark.parametrize(("case", "message"), [
    ("branch", "revise the same revision"),
    ("missing", "no `oldest_compatible_release`"),
    ("malformed", "not a release number"),
    ("orphan", "one line"),
])
def test_mistakes_are_refused(tmp_path: Path, case: str, message: str) -> None:
    write(tmp_path, "0001_a", None)
    if case == "branch":
        write(tmp_path, "0002_b", "0001_a")
        write(tmp_path, "0002_c", "0001_a")
    elif case == "missing":
        write(tmp_path, "0002_b", "0001_a", declaration="")
    elif case == "malformed":
        write(tmp_path, "0002_b", "0001_a", 'oldest_compatible_release = "FILL ME IN"')
    else:
        write(tmp_path, "0003_c", "0002_missing")
    with pytest.raises(RuntimeError, match=message):
        compat.migrations(tmp_path)


def test_new_migrations_are_generated_with_the_declaration() -> None:
    template = (compat.script_location() / "script.py.mako").read_text(encoding="utf-8")
    assert "oldest_compatible_release = " in template


def test_the_shipped_head_is_the_last_migration() -> None:
    assert compat.head_revision() == compat.migrations()[-1].revision
    assert compat.migrations()[0].down_revision is None

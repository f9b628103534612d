"""Alembic, driven from code: the installed package carries its migrations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

    from followup_cli.db.engine import Database


def script_location() -> str:
    """alembic/ beside the package in a checkout; inside it in an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "alembic", package.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return str(candidate)
    raise RuntimeError(f"no alembic/ migrations found beside {package}")


def alembic_config(db: Database) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", script_location())
    cfg.attributes["database"] = db
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    from alembic import command

    with db.errors():
        command.upgrade(alembic_config(db), revision)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from followup_cli.db.engine import Database

    head = ScriptDirectory.from_config(alembic_config(Database("sqlite://"))).get_current_head()
    assert head is not None
    return head

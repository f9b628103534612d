"""Alembic, driven from code: the installed package carries its migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from followup_cli.db.compat import script_location as _script_location
from followup_cli.errors import SchemaError

if TYPE_CHECKING:
    from alembic.config import Config

    from followup_cli.db.engine import Database


def script_location() -> str:
    """alembic/ beside the package in a checkout; inside it in an installed wheel."""
    return str(_script_location())


def alembic_config(db: Database, *, location: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", location or script_location())
    cfg.attributes["database"] = db
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Apply the pending migrations. A schema newer than this followup knows is left alone
    (SchemaError, exit 4): Alembic would only fail on a revision it cannot find."""
    from alembic import command

    state = db.schema_state()
    if state.newer:
        raise SchemaError(state.refusal_to_upgrade(db.url))
    with db.errors():
        command.upgrade(alembic_config(db), revision)


def head_revision() -> str:
    """The head as Alembic itself computes it (tests check the cheap parse against it)."""
    from alembic.script import ScriptDirectory

    from followup_cli.db.engine import Database

    head = ScriptDirectory.from_config(alembic_config(Database("sqlite://"))).get_current_head()
    assert head is not None
    return head

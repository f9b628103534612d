"""Which schema revisions this followup can work with: read from its own migrations.

Every migration in alembic/versions declares `oldest_compatible_release`: the oldest
followup release that still works with the schema the migration leaves (expand/contract:
an additive migration keeps the previous release working, a contracting one does not).
Each `followup db upgrade` records, per applied revision, that declaration and the release
that ran it (table followup_schema_versions, written by alembic/env.py). So a host still
running an older release can tell whether a schema migrated by a newer one is safe for it.

The head revision is the migration no other one revises. The files are parsed with a few
regular expressions, not loaded through Alembic, and the result is cached: every command
checks the schema, and the idle cron pass must stay cheap (no Alembic, no SQLAlchemy).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import followup_cli
from followup_cli.redact import display_url

_REVISION = re.compile(r"^revision\s*(?::\s*str\s*)?=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision\s*(?::[^=]+)?=\s*(None|['\"]([^'\"]+)['\"])", re.M)
_OLDEST = re.compile(
    r"^oldest_compatible_release\s*(?::\s*str\s*)?=\s*['\"]([^'\"]+)['\"]", re.M)


@dataclass(frozen=True)
class Migration:
    revision: str
    down_revision: str | None
    oldest_compatible_release: str


def script_location() -> Path:
    """alembic/ beside the package in a checkout; inside it in an installed wheel."""
    package = Path(followup_cli.__file__).resolve().parent
    for candidate in (package / "alembic", package.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError(f"no alembic/ migrations found beside {package}")


def parse_migration(path: Path) -> Migration:
    text = path.read_text(encoding="utf-8")
    revision, down, oldest = _REVISION.search(text), _DOWN.search(text), _OLDEST.search(text)
    if revision is None or down is None:
        raise RuntimeError(f"{path.name}: no `revision` / `down_revision`")
    if oldest is None:
        raise RuntimeError(f"{path.name}: no `oldest_compatible_release` declaration")
    try:
        release_tuple(oldest.group(1))
    except ValueError:
        raise RuntimeError(f"{path.name}: oldest_compatible_release {oldest.group(1)!r} is "
                           "not a release number (see CONTRIBUTING.md)") from None
    return Migration(revision.group(1), down.group(2), oldest.group(1))


@cache
def migrations(location: Path | None = None) -> tuple[Migration, ...]:
    """Every migration, oldest first. The history is one line: a branch is a mistake."""
    folder = (location or script_location()) / "versions"
    found = [parse_migration(p) for p in sorted(folder.glob("*.py"))]
    by_down = {m.down_revision: m for m in found}
    if len(by_down) != len(found):
        raise RuntimeError(f"{folder}: two migrations revise the same revision")
    ordered: list[Migration] = []
    current = by_down.get(None)
    while current is not None:
        ordered.append(current)
        current = by_down.get(current.revision)
    if len(ordered) != len(found):
        raise RuntimeError(f"{folder}: the migrations do not form one line from the base")
    return tuple(ordered)


def head_revision() -> str:
    return migrations()[-1].revision


def release_tuple(release: str) -> tuple[int, ...]:
    """`0.2.0` → (0, 2, 0); a pre-release suffix (`0.3.0rc1`, `0.3.0.dev2`) counts as
    its release."""
    match = re.match(r"^\s*(\d+(?:\.\d+)*)", release)
    if match is None:
        raise ValueError(f"not a release number: {release!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def release_at_least(release: str, oldest: str) -> bool:
    def padded(t: tuple[int, ...]) -> tuple[int, ...]:
        return t + (0,) * (4 - len(t))

    return padded(release_tuple(release)) >= padded(release_tuple(oldest))


# --- the verdict on a database's schema ----------------------------------------------------

CURRENT, EMPTY, OUTDATED, NEWER_COMPATIBLE, NEWER_INCOMPATIBLE, UNKNOWN = (
    "current", "empty", "outdated", "newer_compatible", "newer_incompatible", "unknown")

# (release that migrated it, oldest release it declares compatible), as recorded.
Record = tuple[str, str]


@dataclass(frozen=True)
class SchemaState:
    """What this followup makes of a database's revision."""

    state: str
    revision: str | None
    head: str
    release: str  # this followup
    migrated_by: str | None = None
    oldest_compatible_release: str | None = None

    @property
    def usable(self) -> bool:
        return self.state in (CURRENT, NEWER_COMPATIBLE)

    @property
    def upgradable(self) -> bool:
        """`followup db upgrade` of this followup has something to do."""
        return self.state in (EMPTY, OUTDATED)

    @property
    def newer(self) -> bool:
        return self.state in (NEWER_COMPATIBLE, NEWER_INCOMPATIBLE, UNKNOWN)

    def problem(self, url: str) -> str:
        """One line for an operator: what is wrong and what to do."""
        where = display_url(url)
        me = f"followup {self.release}"
        if self.state == EMPTY:
            return (f"{where} has no schema, {me} needs {self.head}: "
                    "run `followup db upgrade`")
        if self.state == OUTDATED:
            return (f"{where} has schema revision {self.revision}, {me} needs {self.head}: "
                    "run `followup db upgrade`")
        if self.state == NEWER_INCOMPATIBLE:
            return (f"{where} was migrated to {self.revision} by followup {self.migrated_by}, "
                    f"which needs followup {self.oldest_compatible_release} or newer; this "
                    f"is {me}: upgrade followup on this host (not the database)")
        if self.state == UNKNOWN:
            return (f"{where} has schema revision {self.revision}, which {me} does not know "
                    f"(its newest is {self.head}): it was migrated by a newer followup; "
                    "upgrade followup on this host (not the database)")
        if self.state == NEWER_COMPATIBLE:
            return (f"{where} was migrated to {self.revision} by followup {self.migrated_by}, "
                    f"newer than {me}, which still works with it")
        return f"{where} is at {self.revision}, as {me} needs"

    def refusal_to_upgrade(self, url: str) -> str:
        """Why `followup db upgrade` of this release leaves a newer schema alone."""
        by = f" by followup {self.migrated_by}" if self.migrated_by else ""
        verdict = ("this followup still works with it" if self.state == NEWER_COMPATIBLE
                   else "this followup cannot work with it: upgrade followup on this host")
        return (f"{display_url(url)} was migrated to {self.revision}{by}, newer than "
                f"followup {self.release} knows (its newest is {self.head}): nothing to "
                f"upgrade; {verdict}")

    def to_json(self) -> dict[str, object]:
        return {"current": self.revision, "head": self.head, "state": self.state,
                "up_to_date": self.state == CURRENT, "usable": self.usable,
                "release": self.release, "migrated_by": self.migrated_by,
                "oldest_compatible_release": self.oldest_compatible_release}


def assess(revision: str | None, lookup: Callable[[str], Record | None], *,
           release: str | None = None, known: tuple[Migration, ...] | None = None
           ) -> SchemaState:
    """The verdict on a database at `revision` (None: no schema). `lookup` reads the
    record of a revision this followup does not know; it is called only then."""
    chain = migrations() if known is None else known
    me = followup_cli.__version__ if release is None else release
    head = chain[-1].revision
    if revision is None:
        return SchemaState(EMPTY, None, head, me)
    if revision == head:
        return SchemaState(CURRENT, revision, head, me)
    if revision in {m.revision for m in chain}:
        return SchemaState(OUTDATED, revision, head, me)
    record = lookup(revision)
    if record is None:
        return SchemaState(UNKNOWN, revision, head, me)
    migrated_by, oldest = record
    try:
        compatible = release_at_least(me, oldest)
    except ValueError:
        compatible = False
    return SchemaState(NEWER_COMPATIBLE if compatible else NEWER_INCOMPATIBLE, revision,
                       head, me, migrated_by, oldest)


# The SQL both paths read the record with (placeholder filled per driver).
RECORD_QUERY = ("SELECT migrated_by, oldest_compatible_release FROM followup_schema_versions"
                " WHERE revision = {p}")

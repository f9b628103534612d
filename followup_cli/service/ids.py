"""Follow-up ids as operators type them: whole, or a unique prefix of at least 8
characters, the way git takes a commit (`followup show fff2cf06`)."""

from __future__ import annotations

from followup_cli.errors import InputError
from followup_cli.service.context import Context
from followup_cli.service.requests import require_id
from followup_cli.store import lookup

MIN_PREFIX = 8  # shorter prefixes are too likely to become ambiguous as rows accumulate
MAX_CANDIDATES = 10  # an ambiguous prefix lists at most this many of its matches


def resolve_ids(ctx: Context, given: list[str]) -> list[str]:
    """Each given id, or the one follow-up id it is a prefix of.

    An id that exists is taken as it is, whatever its length. Otherwise a prefix of at
    least MIN_PREFIX characters that starts exactly one id stands for that id; one that
    starts several is an InputError (exit 2) listing them, before anything is changed.
    Anything else comes back unchanged, for the command to report as not found.
    """
    wanted = [require_id("follow-up id", i) for i in given]
    with ctx.db.transaction(readonly=True) as conn:
        exact = lookup.existing_ids(conn, wanted)
        resolved: dict[str, str] = {}
        for prefix in dict.fromkeys(wanted):
            if prefix in exact or len(prefix) < MIN_PREFIX:
                continue
            matches = lookup.ids_starting_with(conn, prefix, MAX_CANDIDATES + 1)
            if len(matches) > 1:
                shown = ", ".join(matches[:MAX_CANDIDATES])
                more = " and more" if len(matches) > MAX_CANDIDATES else ""
                raise InputError(f"follow-up id prefix {prefix!r} is ambiguous: it starts "
                                 f"{shown}{more}; give more characters")
            if matches:
                resolved[prefix] = matches[0]
    return [resolved.get(i, i) for i in wanted]


def resolve_id(ctx: Context, given: str) -> str:
    [resolved] = resolve_ids(ctx, [given])
    return resolved

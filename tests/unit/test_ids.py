"""Follow-up ids are random version-4 UUIDs in canonical text, as uuid.uuid4() made them."""

from __future__ import annotations

import uuid
from collections import Counter

from followup_cli.service.scheduling import new_id


def test_ids_are_canonical_random_uuids() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        value = uuid.UUID(text)
        assert (value.version, value.variant) == (4, uuid.RFC_4122)
        assert str(value) == text  # lowercase, hyphenated: what str(uuid4()) gives


def test_the_random_bits_are_all_used() -> None:
    # Every hex digit outside the fixed version and variant positions takes all 16 values.
    ids = [new_id().replace("-", "") for _ in range(5_000)]
    for position in range(32):
        seen = Counter(i[position] for i in ids)
        if position == 12:
            assert set(seen) == {"4"}
        elif position == 16:
            assert set(seen) == set("89ab")
        else:
            assert len(seen) == 16, position

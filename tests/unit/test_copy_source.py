"""The COPY source of the admission path's stage (store/admission.py): it hands the driver
every line exactly once, in order, and takes a line from its rows only when the piece it
is building is still short, so rendering runs while the server stores the rows before it
and no chunk is ever held as text in full."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from followup_cli.store.admission import COPY_PIECE, RowSourceFailed, _CopySource

lines = st.lists(st.text(min_size=1, max_size=30).map(lambda t: t + "\n"), max_size=60)


@given(lines=lines, size=st.integers(min_value=1, max_value=200))
def test_pieces_hold_every_line_once_taken_only_when_needed(lines: list[str],
                                                            size: int) -> None:
    taken = 0

    def rows() -> Iterator[str]:
        nonlocal taken
        for line in lines:
            taken += 1
            yield line

    source = _CopySource(rows())
    done = 0  # lines handed over so far
    while piece := source.read(size):
        # whole lines, the next ones in order, and only as many as the request needed:
        # without its last line the piece would have been too short
        first = done
        while "".join(lines[first:done]) != piece:
            done += 1
            assert done <= len(lines), "a piece that is not the next whole lines"
        assert len("".join(lines[first:done - 1])) < size
        assert len(piece) >= size or done == len(lines)
        assert taken == done == source.count  # nothing read ahead
    assert done == len(lines) and source.error is None


def test_an_unsized_read_takes_a_piece_not_everything() -> None:
    line = "x" * 1000 + "\n"
    source = _CopySource(iter([line] * (3 * COPY_PIECE // len(line))))
    assert COPY_PIECE <= len(source.read()) < COPY_PIECE + len(line)


def test_an_error_of_the_rows_is_kept_for_the_caller_and_not_shown_to_the_driver() -> None:
    """psycopg2 sends the text of what read() raised to the server, which logs it: a row's
    error may quote the row (a message, a custom text), so the driver gets a fixed text."""
    def rows() -> Iterator[str]:
        yield "a\n"
        raise ValueError("line 2: template t needs {custom_message} 'Bring the cake'")

    source = _CopySource(rows())
    with pytest.raises(RowSourceFailed) as raised:
        source.read(100)
    assert "cake" not in str(raised.value) and raised.value.__cause__ is None
    assert isinstance(source.error, ValueError) and "cake" in str(source.error)

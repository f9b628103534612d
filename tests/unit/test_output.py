"""Output: plain lines without a terminal, rich tables with one, one JSON document."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from followup_cli.cli.output import Output


def test_plain_output_has_no_escape_codes() -> None:
    buf = io.StringIO()
    out = Output(json_mode=False, stream=buf, terminal=False)
    out.fields([("status", "scheduled"), ("at", datetime(2026, 1, 2, 3, 4, tzinfo=UTC))])
    out.table(["id", "n"], [["a", 1], ["b", None]], title="rows")
    text = buf.getvalue()
    assert "\x1b[" not in text
    assert "status: scheduled\nat: 2026-01-02T03:04:00+00:00\n" in text
    assert "id\tn\na\t1\nb\t-\n" in text


def test_terminal_output_is_a_rich_table() -> None:
    buf = io.StringIO()
    out = Output(json_mode=False, stream=buf, terminal=True)
    out.table(["id", "status"], [["f1", "pending"]], title="Follow-ups")
    text = buf.getvalue()
    assert "Follow-ups" in text and "pending" in text
    assert "┃" in text or "│" in text  # drawn as a table, not tab-separated


def test_json_mode_prints_only_the_document() -> None:
    buf = io.StringIO()
    out = Output(json_mode=True, stream=buf, terminal=True)
    out.line("human text")
    out.fields([("a", 1)])
    out.json({"status": "scheduled", "when": datetime(2026, 1, 1, tzinfo=UTC), "name": "ü"})
    assert json.loads(buf.getvalue()) == {"status": "scheduled",
                                          "when": "2026-01-01T00:00:00+00:00", "name": "ü"}


def test_json_stream_is_one_document_for_any_number_of_items() -> None:
    cases: list[list[dict[str, object]]] = [
        [], [{"id": "a", "at": datetime(2026, 1, 1, tzinfo=UTC)}],
        [{"id": f"ü{i}\n\"q\""} for i in range(3)]]
    for items in cases:
        buf = io.StringIO()
        out = Output(json_mode=True, stream=buf)
        count = out.json_stream({"total": 9, "limit": 0}, "rows", iter(items),
                                lambda n: {"count": n})
        doc = json.loads(buf.getvalue())
        assert count == len(items) == doc["count"] and doc["total"] == 9
        assert doc["rows"] == json.loads(json.dumps(items, default=str).replace(
            "2026-01-01 00:00:00+00:00", "2026-01-01T00:00:00+00:00"))

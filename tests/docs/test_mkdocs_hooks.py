"""The site's hooks: root files included, links out of docs/ turned into paths, and a link
to a file that does not exist reported (a warning: `mkdocs build --strict` fails on it)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from scripts import mkdocs_hooks


def _render(markdown: str, src_uri: str = "cron.md") -> str:
    page = SimpleNamespace(file=SimpleNamespace(src_uri=src_uri))
    return mkdocs_hooks.on_page_markdown(markdown, page, None, None)


def test_a_link_to_a_repository_file_becomes_its_path() -> None:
    assert _render("see [`crontab.example`](../crontab.example)") == "see `crontab.example`"
    assert _render("[the units](../deploy/systemd/)") == "the units (`deploy/systemd/`)"


def test_links_inside_the_site_are_left_to_mkdocs() -> None:
    text = "[monitoring](monitoring.md#prometheus) [up](https://example.com/x)"
    assert _render(text) == text
    assert _render("```text\n[x](../nope)\n```\n") == "```text\n[x](../nope)\n```\n"


def test_root_pages_become_site_pages() -> None:
    assert _render("[how](../../CONTRIBUTING.md#adding-a-migration)",
                   "reference/schema.md") == "[how](../contributing.md#adding-a-migration)"


def test_an_included_root_file_keeps_working_links() -> None:
    text = _render("<!-- include: CHANGELOG.md -->\n", "changelog.md")
    assert text.startswith("# Changelog")
    assert "](operations-upgrades.md)" in text and "](docs/" not in text


def test_a_link_to_a_missing_file_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.followup"):
        _render("[gone](../no-such-file.txt)")
    assert "no-such-file.txt" in caplog.text

"""mkdocs hooks: the root files in the site, and links out of docs/ that stay checked.

- `<!-- include: CONTRIBUTING.md -->` on a line of its own is replaced by that file of the
  repository root (the site's Contributing and Changelog pages are the root files
  themselves, not copies that could drift).
- A link that leaves docs/ (`../crontab.example`, or `deploy/...` in an included root
  file) works when the Markdown is read in the repository, but the built site holds no
  such file. It becomes the file's path in code (`crontab.example`), a link to the page
  that includes the root file it names, or a link into docs/ for `docs/...`. A target that
  does not exist is a warning, so `mkdocs build --strict` fails on it like on a broken
  link inside the site.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.followup")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
INCLUDE = re.compile(r"^<!-- include: (?P<path>\S+) -->$", re.MULTILINE)
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]+)\]\((?P<target>[^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)
# Root files that are pages of the site.
ROOT_PAGES = {"CONTRIBUTING.md": "contributing.md", "CHANGELOG.md": "changelog.md"}


def _relative(target: Path, page_dir: Path) -> str:
    return Path(*([".."] * len(page_dir.relative_to(DOCS).parts)), target.relative_to(DOCS)
                ).as_posix()


def _rewrite(match: re.Match[str], base: Path, page_dir: Path, page: str) -> str:
    text, target = match["text"], match["target"]
    if re.match(r"^[a-z][a-z0-9+.-]*:|^#", target):
        return match.group(0)  # a URL, or an anchor on this page
    path_part, _, anchor = target.partition("#")
    resolved = (base / path_part).resolve()
    if resolved.is_relative_to(DOCS):
        if base == page_dir:
            return match.group(0)  # an ordinary link inside the site: mkdocs checks it
        return f"[{text}]({_relative(resolved, page_dir)}{'#' + anchor if anchor else ''})"
    if not resolved.is_relative_to(ROOT) or not resolved.exists():
        log.warning("%s: link to %s, which does not exist in the repository", page, target)
        return match.group(0)
    repo_path = resolved.relative_to(ROOT).as_posix()
    if repo_path in ROOT_PAGES:
        site_page = DOCS / ROOT_PAGES[repo_path]
        suffix = f"#{anchor}" if anchor else ""
        return f"[{text}]({_relative(site_page, page_dir)}{suffix})"
    shown = repo_path + ("/" if resolved.is_dir() else "")
    if text.strip("`").rstrip("/") in (repo_path, resolved.name):
        return f"`{shown}`"
    return f"{text} (`{shown}`)"


def _rewrite_links(markdown: str, base: Path, page_dir: Path, page: str) -> str:
    """Rewrite links outside fenced code blocks; `base` is the directory the links were
    written relative to."""
    parts = FENCE.split(markdown)
    out, inside, i = [], False, 0
    # FENCE.split interleaves text and the captured fence marker.
    while i < len(parts):
        chunk = parts[i]
        out.append(chunk if inside else LINK.sub(
            lambda m: _rewrite(m, base, page_dir, page), chunk))
        if i + 1 < len(parts):
            out.append(parts[i + 1])
            inside = not inside
        i += 2
    return "".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    src = DOCS / page.file.src_uri
    page_dir = src.parent

    def include(match: re.Match[str]) -> str:
        path = ROOT / match["path"]
        if not path.exists():
            log.warning("%s: cannot include %s: no such file", page.file.src_uri, path)
            return match.group(0)
        return _rewrite_links(path.read_text(encoding="utf-8"), path.parent, page_dir,
                              page.file.src_uri)

    markdown = INCLUDE.sub(include, markdown)
    return _rewrite_links(markdown, page_dir, page_dir, page.file.src_uri)

"""The shell examples of the documentation, and the example world they run in.

Convention (CONTRIBUTING.md, "Documentation"): every fenced `bash`, `sh`, `shell` or
`console` block in README.md, CONTRIBUTING.md, CHANGELOG.md and docs/ runs, in a scratch
directory whose home holds the embedded SQLite database of the example world below, and
every command in it must exit 0. HTML comments on the lines just above a fence change that:

    <!-- not-runnable: REASON -->   not run here; the reason is required and says why
    <!-- runs-on: postgresql -->    run against a fresh PostgreSQL database of the same
                                    world (DATABASE_URL and FOLLOWUP_SENDER=log are set)
    <!-- file: NAME -->             (above any block) write the block to NAME in the
                                    scratch directory of the later blocks of the page

A block of plain `followup` commands runs in-process (Typer's CliRunner); a block with any
other program or shell syntax runs as one `bash` script with `followup` on the PATH.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
DIRECTIVE = re.compile(r"^\s*<!-- (?P<name>[a-z-]+): (?P<value>.*?) -->\s*$")
KNOWN_DIRECTIVES = {"not-runnable", "runs-on", "file"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)\s*$")
SHELL_SYNTAX = re.compile(r"[$`]")


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md"]
    return files + sorted((ROOT / "docs").rglob("*.md"))


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    directives: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"

    @property
    def is_shell(self) -> bool:
        return self.lang in SHELL_LANGUAGES

    def commands(self) -> list[str]:
        """The commands of the block: `$ ` lines of a console block, else every line that
        is not blank or a comment, with `\\` continuations joined."""
        lines = self.text.splitlines()
        if self.lang == "console":
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        commands: list[str] = []
        pending = ""
        for line in lines:
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            commands.append(pending + line)
            pending = ""
        return commands


def parse(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        directives = {}
        j = i - 1
        while j >= 0 and (found := DIRECTIVE.match(lines[j])):
            directives[found["name"]] = found["value"].strip()
            j -= 1
        body: list[str] = []
        k = i + 1
        while k < len(lines) and lines[k].strip() != fence:
            body.append(lines[k][len(indent):] if lines[k].startswith(indent) else lines[k])
            k += 1
        blocks.append(Block(path, i + 1, match["lang"], "\n".join(body) + "\n", directives))
        i = k + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in parse(path)]


def strip_comment(command: str) -> str:
    """The command without its trailing comment: as in the shell, `#` starts one only at
    the start of a word and outside quotes."""
    quote = ""
    for i, char in enumerate(command):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i].rstrip()
    return command


def in_process_argv(command: str) -> tuple[dict[str, str], list[str]] | None:
    """(environment assignments, followup's arguments) when the command is a plain
    `[NAME=value ...] followup ...` that CliRunner can run; None when it needs a shell."""
    command = strip_comment(command)
    if SHELL_SYNTAX.search(command):
        return None
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    tokens = list(lexer)
    env: dict[str, str] = {}
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):
        name, _, value = tokens.pop(0).partition("=")
        env[name] = value
    if not tokens or tokens[0] != "followup":
        return None
    if any(all(c in "|&;<>()" for c in token) for token in tokens):
        return None
    return env, tokens[1:]


# --- the example world --------------------------------------------------------------------

PENDING_ID = "5f0c6d1e-8a8f-4c1e-9f59-2f7d0c6f1b2a"
FAILED_IDS = ("9a7b3c2d-4e5f-4a6b-8c7d-0e1f2a3b4c5d", "b41c7e90-1f2e-4d3c-9b8a-7a6b5c4d3e2f")

FILES = {
    "bookings.jsonl": (
        '{"type": "post_event", "user_id": "u42", "conversation_id": "c7", '
        '"event_date": "2026-11-14T18:00", "booking_id": "B-1001"}\n'
        '{"type": "reengagement", "user_id": "u43", "at": "2026-12-01T09:00"}\n'),
    "bookings.csv": (
        "type,user_id,conversation_id,event_date,booking_id\n"
        "post_event,u46,c12,2026-11-20T18:00,B-1002\n"),
    "history.jsonl": (
        '{"conversation_id": "c7", "user_id": "u42", "role": "user", "content": "The party '
        'was great!", "emotion_score": 0.9, "created_at": "2026-10-01T18:00:00Z"}\n'),
    "templates.toml": (
        '[templates.vip_post_event]\n'
        'content = "Dear guest, thank you for {event_date}. {custom_message}"\n'),
}


def seed(database_url: str) -> None:
    """The world the examples talk about: user u42 with a happy conversation c7 and a
    pending post-event follow-up 5f0c6d1e-..., u43 quiet for 45 days (conversation c9),
    two failed follow-ups (9a7b3c2d-..., b41c7e90-...) of u44 and u45."""
    from followup_cli.db.migrate import upgrade
    from followup_cli.service.context import Context
    from followup_cli.settings import load_settings
    from tests.helpers import add_conversation, add_followup

    ctx = Context(load_settings({"DATABASE_URL": database_url}))
    try:
        upgrade(ctx.db)
        now = ctx.now()
        add_conversation(ctx, "c7", "u42", [0.9, 0.8, 0.85])
        add_conversation(ctx, "c9", "u43", [0.3, 0.2], at=now - timedelta(days=45))
        add_conversation(ctx, "c11", "u44", [0.5], at=now - timedelta(days=2))
        event = now + timedelta(days=20)
        add_followup(ctx, id=PENDING_ID, user_id="u42", conversation_id="c7",
                     trigger_data={"event_date": event.isoformat(), "booking_id": "B-1000"},
                     event_at=event, scheduled_at=event + timedelta(hours=24),
                     template_id="post_event_high_emotion")
        for fid, user in zip(FAILED_IDS, ("u44", "u45"), strict=True):
            add_followup(ctx, id=fid, user_id=user, conversation_id="c11", status="failed",
                         retry_count=4, scheduled_at=now - timedelta(days=1),
                         last_attempt_at=now - timedelta(hours=20),
                         error_message="webhook answered HTTP 503 Service Unavailable")
    finally:
        ctx.close()

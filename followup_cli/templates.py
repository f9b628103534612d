"""Message templates: the built-ins, the operator's TOML overrides, and rendering.

Templates are `str.format` text restricted to plain `{name}` fields from a fixed set, so a
template can neither reach attributes (`{x.__class__}`) nor depend on format specs. Every
template is checked when loaded and every message is rendered when it is scheduled, so a bad
placeholder is an input error at scheduling time, never a failure at 9 AM.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from followup_cli.errors import InputError, SettingsError

VARIABLES = ("event_date", "booking_id", "days_inactive", "custom_message")
# What each trigger type can fill in; templates named <type>_* are held to it.
TYPE_VARIABLES = {
    "post_event": frozenset({"event_date", "booking_id", "custom_message"}),
    "reengagement": frozenset({"days_inactive"}),
}
MAX_CUSTOM_MESSAGE = 2000
MAX_TEMPLATE_ID = 50

BUILTIN_TEMPLATES: dict[str, str] = {
    "post_event_high_emotion": (
        "Hi! 🎉 I hope your event on {event_date} was amazing! We'd love to hear how it "
        "went, and we're here whenever you want to plan the next one."
    ),
    "post_event_neutral_emotion": (
        "Hi! Thank you for celebrating with us on {event_date}. How did everything go? "
        "We'd be glad to hear your thoughts."
    ),
    "post_event_low_emotion": (
        "Hi, thank you for joining us on {event_date}. We want every event to be great, "
        "and we'd really value hearing how we could have made yours better."
    ),
    "reengagement_high_emotion": (
        "Hi! 👋 It's been {days_inactive} days and we miss you! Is there anything fun "
        "we can help you plan?"
    ),
    "reengagement_neutral_emotion": (
        "Hi! It's been {days_inactive} days since we last talked. Is there anything we "
        "can help you with?"
    ),
    "reengagement_low_emotion": (
        "Hi, it's been {days_inactive} days since we last spoke. If anything didn't go "
        "the way you hoped, we'd like to make it right."
    ),
}


def trigger_kind(template_id: str) -> str | None:
    """The trigger type a template is named for (`post_event_…`, `reengagement_…`)."""
    return next((k for k in TYPE_VARIABLES if template_id.startswith(k + "_")), None)


@dataclass(frozen=True)
class Template:
    id: str
    content: str
    fields: frozenset[str]
    source: str  # "built-in" or the templates file's path


def template_fields(template_id: str, content: str) -> frozenset[str]:
    """The placeholders of `content`; refuses anything but plain known `{name}` fields."""
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(content))
    except ValueError as exc:
        raise SettingsError(f"template {template_id}: {exc}") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in VARIABLES:
            raise SettingsError(
                f"template {template_id}: unknown placeholder {{{name}}} "
                f"(known: {', '.join('{' + v + '}' for v in VARIABLES)})"
            )
        if spec or conversion:
            raise SettingsError(
                f"template {template_id}: placeholder {{{name}}} may not carry a format or "
                "conversion"
            )
        names.add(name)
    return frozenset(names)


class TemplateSet:
    """The templates in force, by id."""

    def __init__(self, templates: Mapping[str, Template]):
        self._templates = dict(templates)

    def __contains__(self, template_id: object) -> bool:
        return template_id in self._templates

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._templates.values(), key=lambda t: t.id))

    def get(self, template_id: str) -> Template:
        try:
            return self._templates[template_id]
        except KeyError:
            raise InputError(f"unknown template {template_id!r}") from None

    def render(self, template_id: str, values: Mapping[str, str | None]) -> str:
        """Render a message; a placeholder without a value is an input error."""
        template = self.get(template_id)
        missing = [f for f in template.fields if values.get(f) in (None, "")]
        if missing:
            missing.sort()
            raise InputError(
                f"template {template_id} needs {', '.join(missing)}, which was not given "
                "(pass it, or change the template)"
            )
        return template.content.format_map(values)


def builtin_templates() -> dict[str, Template]:
    return {
        tid: Template(tid, text, template_fields(tid, text), "built-in")
        for tid, text in BUILTIN_TEMPLATES.items()
    }


def load_templates(path: Path | None) -> TemplateSet:
    if path is None:
        return TemplateSet(builtin_templates())
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise SettingsError(f"FOLLOWUP_TEMPLATES_FILE: cannot read {str(path)!r}: "
                            f"{exc.strerror}") from None
    return _load_file(path, stamp)


@functools.lru_cache(maxsize=4)
def _load_file(path: Path, _mtime_ns: int) -> TemplateSet:
    import tomllib

    label = "FOLLOWUP_TEMPLATES_FILE"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{label}: cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{label}: {str(path)!r} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{label}: {str(path)!r} is not valid TOML: {exc}") from None
    table = data.get("templates")
    if not isinstance(table, dict) or not table:
        raise SettingsError(
            f"{label}: {str(path)!r} has no [templates.<id>] tables "
            '(e.g. [templates.post_event_high_emotion] content = "...")'
        )
    templates = builtin_templates()
    for tid, body in table.items():
        where = f"{label}: template {tid}"
        if not tid.strip():
            raise SettingsError(f"{label}: a template id is empty")
        if len(tid) > MAX_TEMPLATE_ID:
            raise SettingsError(f"{where}: id is longer than {MAX_TEMPLATE_ID} characters")
        if not isinstance(body, dict):
            raise SettingsError(f"{where}: must be a table with content = \"...\"")
        unknown = sorted(set(body) - {"content", "description"})
        if unknown:
            raise SettingsError(f"{where}: unknown key {unknown[0]!r} (allowed: content, "
                                "description)")
        content = body.get("content")
        if not isinstance(content, str) or not content.strip():
            raise SettingsError(f"{where}: content is missing or empty")
        try:
            fields = template_fields(tid, content)
        except SettingsError as exc:
            raise SettingsError(f"{label}: {exc}") from None
        # A placeholder its trigger type never has a value for would fail every scan or
        # schedule of that kind: refuse it now rather than at 9 AM.
        kind = trigger_kind(tid)
        if kind is not None and fields - TYPE_VARIABLES[kind]:
            name = sorted(fields - TYPE_VARIABLES[kind])[0]
            allowed = ", ".join("{" + v + "}" for v in sorted(TYPE_VARIABLES[kind]))
            raise SettingsError(f"{where}: {{{name}}} has no value in a {kind} follow-up "
                                f"(it may use {allowed})")
        templates[tid] = Template(tid, content, fields, str(path))
    return TemplateSet(templates)


def emotion_band(mean: float | None) -> str:
    """high / neutral / low from the mean emotion score (no scores: neutral)."""
    if mean is None:
        return "neutral"
    if mean >= 0.7:
        return "high"
    if mean >= 0.4:
        return "neutral"
    return "low"


def emotion_mean(scores: list[float]) -> float | None:
    """Mean of the scores rounded to 6 decimals, so that 0.7 computed as 0.69999… is high."""
    if not scores:
        return None
    import math

    return round(math.fsum(scores) / len(scores), 6)


def choose_template(trigger_type: str, mean: float | None) -> str:
    return f"{trigger_type}_{emotion_band(mean)}_emotion"

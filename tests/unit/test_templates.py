"""templates.py: built-ins, the TOML file's validation (one clear error per mistake, naming
the template), rendering, and emotion bands."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from followup_cli.errors import ExitCode, InputError, SettingsError
from followup_cli.settings import load_settings
from followup_cli.templates import (
    BUILTIN_TEMPLATES,
    MAX_TEMPLATE_ID,
    builtin_templates,
    choose_template,
    emotion_band,
    emotion_mean,
    load_templates,
    template_fields,
)


def write(tmp_path: Path, text: str | bytes, name: str = "templates.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_builtins_are_the_six_of_the_guide() -> None:
    templates = load_templates(None)
    assert [t.id for t in templates] == sorted(BUILTIN_TEMPLATES)
    assert len(BUILTIN_TEMPLATES) == 6
    for template in templates:
        assert template.source == "built-in"
        expected = "event_date" if template.id.startswith("post_event") else "days_inactive"
        assert template.fields == frozenset({expected})


def test_file_overrides_and_adds(tmp_path: Path) -> None:
    path = write(tmp_path, """
[templates.post_event_high_emotion]
content = "Thanks for {event_date}! Booking {booking_id}."
description = "shorter"

[templates.vip_post_event]
content = '''Dear guest,
we loved hosting you on {event_date}. {custom_message}'''
""")
    templates = load_templates(path)
    high = templates.get("post_event_high_emotion")
    assert high.source == str(path)
    assert high.fields == frozenset({"event_date", "booking_id"})
    assert templates.get("post_event_low_emotion").source == "built-in"  # untouched
    assert "vip_post_event" in templates
    assert templates.render("vip_post_event", {"event_date": "May 1, 2026",
                                               "custom_message": "See you!"}) == (
        "Dear guest,\nwe loved hosting you on May 1, 2026. See you!")


def test_literal_braces_are_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, '[templates.x]\ncontent = "Use {{code}} on {event_date}"\n')
    assert load_templates(path).render("x", {"event_date": "today"}) == (
        "Use {code} on today")


def test_file_changes_are_picked_up(tmp_path: Path) -> None:
    path = write(tmp_path, '[templates.x]\ncontent = "one"\n')
    assert load_templates(path).get("x").content == "one"
    path.write_text('[templates.x]\ncontent = "two {event_date}"\n', encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load_templates(path).get("x").content == "two {event_date}"


# Each kind of mistake, with what the one-line message must name.
MISTAKES = [
    ("toml_syntax", '[templates.x\ncontent = "hi"\n', ["not valid TOML"]),
    ("toml_unterminated_string", '[templates.x]\ncontent = "hi\n', ["not valid TOML"]),
    ("unknown_placeholder", '[templates.welcome]\ncontent = "Hi {first_name}"\n',
     ["template welcome", "unknown placeholder {first_name}"]),
    ("attribute_access", '[templates.sneaky]\ncontent = "{event_date.__class__}"\n',
     ["template sneaky", "{event_date.__class__}"]),
    ("attribute_x", '[templates.dotted]\ncontent = "On {event_date.x}"\n',
     ["template dotted", "{event_date.x}"]),
    ("index_access", '[templates.indexed]\ncontent = "On {event_date[0]}"\n',
     ["template indexed", "{event_date[0]}"]),
    ("positional", '[templates.bare]\ncontent = "Hi {}"\n', ["template bare", "{}"]),
    ("format_spec", '[templates.fmt]\ncontent = "In {days_inactive:>5} days"\n',
     ["template fmt", "{days_inactive}", "format"]),
    ("conversion", '[templates.conv]\ncontent = "On {event_date!r}"\n',
     ["template conv", "{event_date}", "conversion"]),
    ("lone_brace", '[templates.brace]\ncontent = "Hi {event_date"\n', ["template brace"]),
    ("lone_closing_brace", '[templates.closing]\ncontent = "Hi }"\n', ["template closing"]),
    ("empty_content", '[templates.blank]\ncontent = "   "\n',
     ["template blank", "content is missing or empty"]),
    ("missing_content", '[templates.nocontent]\ndescription = "x"\n',
     ["template nocontent", "content is missing or empty"]),
    ("content_not_text", "[templates.number]\ncontent = 42\n",
     ["template number", "content"]),
    ("unknown_key", '[templates.typo]\ncontnet = "Hi"\ncontent = "Hi"\n',
     ["template typo", "unknown key 'contnet'"]),
    ("id_too_long", f'[templates.{"x" * (MAX_TEMPLATE_ID + 1)}]\ncontent = "Hi"\n',
     ["x" * (MAX_TEMPLATE_ID + 1), f"longer than {MAX_TEMPLATE_ID}"]),
    ("not_a_table", '[templates]\nwelcome = "Hi {event_date}"\n',
     ["template welcome", "must be a table"]),
    ("templates_not_a_table", 'templates = "oops"\n', ["no [templates.<id>] tables"]),
    ("no_templates", '[other]\nx = 1\n', ["no [templates.<id>] tables"]),
    ("empty_file", "", ["no [templates.<id>] tables"]),
    ("empty_id", '[templates.""]\ncontent = "Hi"\n', ["template id is empty"]),
    ("reengagement_with_post_event_field",
     '[templates.reengagement_neutral_emotion]\ncontent = "Hi {custom_message}"\n',
     ["template reengagement_neutral_emotion", "{custom_message} has no value",
      "{days_inactive}"]),
    ("post_event_with_days_inactive",
     '[templates.post_event_vip]\ncontent = "{days_inactive} days"\n',
     ["template post_event_vip", "{days_inactive} has no value in a post_event"]),
]


@pytest.mark.parametrize(("text", "needles"), [(t, n) for _, t, n in MISTAKES],
                         ids=[name for name, _, _ in MISTAKES])
def test_each_mistake_is_one_clear_settings_error(tmp_path: Path, text: str,
                                                  needles: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_templates(path)
    message = str(info.value)
    assert info.value.exit_code == ExitCode.INVALID
    assert message.startswith("FOLLOWUP_TEMPLATES_FILE: ")
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, b'[templates.x]\ncontent = "caf\xe9"\n')
    with pytest.raises(SettingsError, match="not UTF-8"):
        load_templates(path)


def test_unreadable_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_templates(tmp_path / "missing.toml")
    with pytest.raises(SettingsError, match="FOLLOWUP_TEMPLATES_FILE"):
        load_settings({"DATABASE_URL": "sqlite:///x.db",
                       "FOLLOWUP_TEMPLATES_FILE": str(tmp_path / "missing.toml")})


def test_settings_refuse_a_broken_file_at_start(tmp_path: Path) -> None:
    path = write(tmp_path, '[templates.welcome]\ncontent = "Hi {name}"\n')
    with pytest.raises(SettingsError, match="template welcome"):
        load_settings({"DATABASE_URL": "sqlite:///x.db", "FOLLOWUP_TEMPLATES_FILE": str(path)})


def test_template_fields() -> None:
    assert template_fields("t", "On {event_date}, {event_date} again") == {"event_date"}
    assert template_fields("t", "no placeholders") == frozenset()
    with pytest.raises(SettingsError, match="template t: unknown placeholder"):
        template_fields("t", "{user_id}")


def test_render_missing_value_is_an_input_error() -> None:
    templates = load_templates(None)
    with pytest.raises(InputError, match="needs event_date"):
        templates.render("post_event_high_emotion", {"event_date": None})
    with pytest.raises(InputError, match="needs event_date"):
        templates.render("post_event_high_emotion", {"event_date": ""})
    with pytest.raises(InputError, match="unknown template 'nope'"):
        templates.render("nope", {})


def test_render_ignores_extra_values_and_never_formats_them() -> None:
    templates = load_templates(None)
    text = templates.render("reengagement_low_emotion",
                            {"days_inactive": "{event_date.__class__}", "booking_id": "B"})
    assert "{event_date.__class__} days" in text  # values are not re-interpreted


def test_builtin_templates_are_valid() -> None:
    assert set(builtin_templates()) == set(BUILTIN_TEMPLATES)


@pytest.mark.parametrize(("mean", "band"), [
    (None, "neutral"), (0.0, "low"), (0.399999, "low"), (0.4, "neutral"),
    (0.699999, "neutral"), (0.7, "high"), (1.0, "high"),
])
def test_emotion_bands(mean: float | None, band: str) -> None:
    assert emotion_band(mean) == band
    assert choose_template("post_event", mean) == f"post_event_{band}_emotion"


def test_emotion_mean_rounds_float_error_away() -> None:
    assert emotion_mean([]) is None
    assert emotion_mean([0.6, 0.8, 0.7]) == 0.7
    assert emotion_band(emotion_mean([0.6, 0.8, 0.7])) == "high"

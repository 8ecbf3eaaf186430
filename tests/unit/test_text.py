"""Control characters in names and descriptions: refused coming in, escaped going out."""

from __future__ import annotations

from typing import Any

import pytest

from releaseflow.domain.config import parse_configuration
from releaseflow.domain.errors import ValidationError
from releaseflow.domain.text import escape_text, unsafe_characters

# One of each class the module refuses; each must be refused and escaped.
HOSTILE = {
    "NUL": "\x00",
    "ESC (terminal escape sequence)": "\x1b[2J",
    "tab": "\t",
    "line feed": "\n",
    "carriage return": "\r",
    "DEL": "\x7f",
    "C1 control (NEL)": "\x85",
    "C1 CSI": "\x9b",
    "right-to-left override": "\u202e",
    "left-to-right embedding": "\u202a",
    "first strong isolate": "\u2068",
    "pop directional isolate": "\u2069",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "byte order mark": "\ufeff",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "information separator (Python whitespace)": "\x1c",
}


@pytest.mark.parametrize("hostile", HOSTILE.values(), ids=HOSTILE.keys())
def test_unsafe_characters__each_class_is_refused_with_its_position(hostile: str) -> None:
    problem = unsafe_characters(f"ab{hostile}cd")
    assert problem is not None
    assert problem.startswith("must not contain control or invisible formatting characters: U+")
    assert "at character 3" in problem


@pytest.mark.parametrize("text", ["Shop backend", "Café ünïcode 東京", "release-2", "emoji 🚀", "a\\x1b"])
def test_unsafe_characters__printable_text_passes(text: str) -> None:
    assert unsafe_characters(text) is None


def test_unsafe_characters__names_the_character_and_counts_the_rest() -> None:
    assert unsafe_characters("x\u202ey\x1bz") == (
        "must not contain control or invisible formatting characters: "
        "U+202E (RIGHT-TO-LEFT OVERRIDE) at character 2 (and 1 more)"
    )


@pytest.mark.parametrize("hostile", HOSTILE.values(), ids=HOSTILE.keys())
def test_escape_text__no_unsafe_character_survives(hostile: str) -> None:
    escaped = escape_text(f"name {hostile} end")
    assert escaped.isprintable()
    assert unsafe_characters(escaped) is None


def test_escape_text__writes_escapes_and_keeps_newlines_when_asked() -> None:
    assert escape_text("red\x1b[31m\u202etext\n") == "red\\x1b[31m\\u202etext\\x0a"
    assert escape_text("one\ntwo\r", keep_newlines=True) == "one\ntwo\\x0d"
    assert escape_text("plain text") == "plain text"


def _config(project: dict[str, Any]) -> dict[str, Any]:
    return {"projects": [{"id": "shop", **project}]}


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (_config({"name": "Shop\x1b[2J"}), "projects[0].name"),
        (_config({"description": "evil\u202etxt.exe"}), "projects[0].description"),
        (_config({"pipelines": [{"id": "main", "name": "Main\x00"}]}), "projects[0].pipelines[0].name"),
        (_config({"pipelines": [{"id": "main", "name": "Main\x1cline"}]}), "projects[0].pipelines[0].name"),
        (
            _config({"pipelines": [{"id": "main", "description": "a\x9bb"}]}),
            "projects[0].pipelines[0].description",
        ),
        (
            _config({"pipelines": [{"id": "main", "stages": [{"name": "Prod\u2066"}]}]}),
            "projects[0].pipelines[0].stages[0].name",
        ),
    ],
)
def test_parse_configuration__names_and_descriptions_refuse_control_characters(
    document: dict[str, Any], path: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_configuration(document, read_file=lambda name: "", source="shop.yaml")
    (issue,) = caught.value.issues
    assert issue.path == path
    assert "must not contain control or invisible formatting characters" in issue.message

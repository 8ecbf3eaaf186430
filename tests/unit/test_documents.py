"""Reading JSON and YAML documents safely (``releaseflow.domain.documents``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from releaseflow.domain.documents import (
    MAX_DOCUMENT_DEPTH,
    check_document_shape,
    load_document,
    read_document_bytes,
)
from releaseflow.domain.errors import Issue, ValidationError

NORTHFLANK = Path(__file__).resolve().parent.parent / "fixtures" / "northflank"


def only_issue(text: str | bytes, **kwargs: int) -> Issue:
    with pytest.raises(ValidationError) as caught:
        load_document(text, source="flow.yaml", **kwargs)
    assert caught.value.subject == "flow.yaml"
    assert len(caught.value.issues) == 1
    return caught.value.issues[0]


def test_load_document__json() -> None:
    assert load_document('{"a": [1, 2.5, true, null, "x"]}') == {"a": [1, 2.5, True, None, "x"]}


def test_load_document__json_bytes_with_bom() -> None:
    assert load_document(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


def test_load_document__northflank_examples_load_as_written() -> None:
    for path in NORTHFLANK.glob("*.json"):
        assert load_document(path.read_bytes()) == json.loads(path.read_text())


def test_load_document__yaml() -> None:
    text = "apiVersion: v1.2\nspec:\n  kind: Workflow\n  spec: {type: parallel, steps: []}\n"
    assert load_document(text) == {
        "apiVersion": "v1.2",
        "spec": {"kind": "Workflow", "spec": {"type": "parallel", "steps": []}},
    }


def test_load_document__yaml_dates_stay_strings() -> None:
    assert load_document("when: 2024-01-02\nat: 2024-01-02T10:00:00Z\n") == {
        "when": "2024-01-02",
        "at": "2024-01-02T10:00:00Z",
    }


def test_load_document__yaml_merge_keys_are_not_duplicates() -> None:
    assert load_document("base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  x: 3\n") == {
        "base": {"x": 1, "y": 2},
        "item": {"x": 3, "y": 2},
    }


def test_load_document__invalid_json_has_line_and_column() -> None:
    assert only_issue('{\n  "a": 1,\n  "b": \n}') == Issue(
        "", "line 4, column 1: invalid JSON: Expecting value"
    )


def test_load_document__invalid_yaml_has_line_and_column() -> None:
    issue = only_issue("a: 1\nb: [1, 2\n")
    assert issue.message.startswith("line 3, column 1: invalid YAML: ")


def test_load_document__duplicate_json_key_has_path_line_and_column() -> None:
    text = '{"spec": {"steps": [{"ref": "a"}, {"ref": "b", "kind": "X", "ref": "c"}]}}'
    assert only_issue(text) == Issue("spec.steps[1].ref", "line 1, column 61: duplicate key 'ref'")


def test_load_document__duplicate_json_key_on_later_line() -> None:
    assert only_issue('{\n  "a": 1,\n  "a": 2\n}') == Issue("a", "line 3, column 3: duplicate key 'a'")


def test_load_document__duplicate_yaml_key() -> None:
    assert only_issue("a: 1\nb:\n  c: 1\n  c: 2\n") == Issue("", "line 4, column 3: duplicate key 'c'")


def test_load_document__non_string_yaml_key() -> None:
    assert only_issue("on: push\n") == Issue("", "line 1, column 1: keys must be strings (quote the key)")


def test_load_document__oversize() -> None:
    assert only_issue('{"a": "' + "x" * 100 + '"}', max_bytes=50) == Issue(
        "", "document is 109 bytes; the limit is 50 bytes"
    )


def test_load_document__size_counts_utf8_bytes() -> None:
    assert only_issue('{"a": "' + "é" * 30 + '"}', max_bytes=50).message.startswith("document is 69 bytes")


def test_load_document__empty() -> None:
    assert only_issue("  \n") == Issue("", "document is empty")


def test_load_document__not_utf8_names_line_and_column() -> None:
    assert only_issue(b'{"a": "\xff"}') == Issue("", "line 1, column 8: not UTF-8 text (invalid byte 0xff)")
    assert only_issue(b'a: 1\nb: "\xfe"\n') == Issue(
        "", "line 2, column 5: not UTF-8 text (invalid byte 0xfe)"
    )


@pytest.mark.parametrize(("character", "code"), [("\x00", "U+0000"), ("\x1b", "U+001B"), ("\x7f", "U+007F")])
def test_load_document__control_character_in_yaml_names_line_and_column(character: str, code: str) -> None:
    issue = only_issue(f"apiVersion: v1.2\nspec:\n  kind: Work{character}flow\n")
    assert issue.message.startswith(f"line 3, column 13: invalid YAML: character {code} is not allowed")
    assert "position" not in issue.message


def test_load_document__nul_in_json_names_line_and_column() -> None:
    assert only_issue('{"a":\n  "x\x00"}').message.startswith("line 2, column 5: invalid JSON")


def test_read_document_bytes__reads_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_bytes(b"a: 1\n")
    assert read_document_bytes(path) == b"a: 1\n"
    assert read_document_bytes(path, max_bytes=5) == b"a: 1\n"


def test_read_document_bytes__refuses_an_endless_device_after_the_limit() -> None:
    with pytest.raises(OSError) as caught:
        read_document_bytes("/dev/zero")
    assert caught.value.strerror == "a character device, not a regular file"


def test_read_document_bytes__refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "flow.yaml"
    os.mkfifo(fifo)
    with pytest.raises(OSError) as caught:
        read_document_bytes(fifo)  # no writer: a blocking open or read would never return
    assert caught.value.strerror == "a FIFO (named pipe), not a regular file"


def test_read_document_bytes__refuses_a_directory_and_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OSError) as caught:
        read_document_bytes(tmp_path)
    assert caught.value.strerror in ("a directory, not a regular file", "Is a directory")
    with pytest.raises(FileNotFoundError):
        read_document_bytes(tmp_path / "missing.yaml")


def test_read_document_bytes__reads_at_most_one_byte_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"x" * 101)
    with pytest.raises(OSError) as caught:
        read_document_bytes(path, max_bytes=100)
    assert caught.value.strerror == "larger than the limit of 100 bytes"


def test_load_document__json_nan_is_refused() -> None:
    assert only_issue('{"a": NaN}').message == "invalid JSON: NaN is not valid JSON"


def test_load_document__yaml_only_types_are_refused() -> None:
    assert "has no JSON equivalent" in only_issue("a: !!binary aGVsbG8=\n").message
    assert "have no JSON equivalent" in only_issue("a: .inf\n").message
    assert "invalid YAML" in only_issue("a: !!python/object:os.system {}\n").message


def test_load_document__billion_laughs_is_bounded() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for index, name in enumerate("bcdefghi"):
        previous = "abcdefghi"[index]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    issue = only_issue("\n".join(lines))
    assert "expands to more than 1000000 values" in issue.message


def test_load_document__recursive_alias_is_refused() -> None:
    assert only_issue("a: &a [1, *a]\n").message == "line 1, column 4: recursive alias 'a'"


def test_load_document__small_aliases_are_fine() -> None:
    assert load_document("a: &a [1, 2]\nb: *a\n") == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize("opening", ["[", "- "])
def test_load_document__deep_nesting_is_refused(opening: str) -> None:
    text = opening * 20_000 + ("x" if opening == "- " else "")
    assert only_issue(text) == Issue("", f"document nests deeper than {MAX_DOCUMENT_DEPTH} levels")


def test_load_document__moderate_nesting_is_fine() -> None:
    assert load_document("[" * 100 + "]" * 100) is not None


def test_load_document__huge_integer_is_refused() -> None:
    assert "invalid JSON" in only_issue('{"a": ' + "9" * 5000 + "}").message


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('{"a": {"b": ["ok", "x\\u0000y"]}}', "a.b[1]"),
        ('{"a\\u0000": 1}', "a\x00"),
        ('a:\n  b: "x\\0y"\n', "a.b"),
        ('a: "\\x00"\n', "a"),
    ],
)
def test_load_document__escaped_nul_is_refused_at_its_path(text: str, path: str) -> None:
    assert only_issue(text) == Issue(path, "must not contain a NUL character (U+0000)")


def test_check_document_shape__nul_in_a_template_from_anywhere_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        check_document_shape({"spec": {"steps": [{"ref": "a\x00"}]}}, subject="template")
    assert caught.value.issues == (Issue("spec.steps[0].ref", "must not contain a NUL character (U+0000)"),)

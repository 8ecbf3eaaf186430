"""Reading a JSON or YAML document from text, safely.

Templates and configuration arrive as text from users (files, HTTP bodies, GitOps). This module turns
that text into plain JSON-like values (dict, list, str, int, float, bool, None) or raises
``ValidationError`` naming the line and column of the problem. It refuses what would make later code
misbehave or stall: oversized input, duplicate keys (the last one would silently win), non-string
keys, YAML-only types (dates, binary, sets) and YAML alias "bombs" whose expansion is exponential.

``read_document_bytes`` is the one way releaseflow reads such a file from disk: at most the size limit,
and only from a regular file (a FIFO would block for ever, ``/dev/zero`` never ends).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from releaseflow.domain.errors import Issue, ValidationError

MAX_DOCUMENT_BYTES = 1_000_000
# Deepest nesting of objects and lists accepted; a 32-level workflow tree needs about 100.
MAX_DOCUMENT_DEPTH = 128
# Values in a document after YAML aliases are expanded; bounds "billion laughs" documents.
MAX_DOCUMENT_VALUES = 1_000_000

_FILE_TYPES = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def read_document_bytes(path: str | Path, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, refusing other files and files over ``max_bytes``.

    Raises ``OSError`` whose ``strerror`` says what is wrong (so callers that already report "cannot
    read" errors report these too): the file is missing or unreadable, is not a regular file (FIFO,
    device, socket, directory), or is larger than the limit. Never reads more than ``max_bytes + 1``
    bytes, and never blocks on a FIFO: it is opened non-blocking and refused before any read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    descriptor = os.open(path, flags)
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            what = _FILE_TYPES.get(stat.S_IFMT(mode), "not a regular file")
            raise OSError(errno.EINVAL, f"{what}, not a regular file", str(path))
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(descriptor, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise OSError(errno.EFBIG, f"larger than the limit of {max_bytes} bytes", str(path))
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def load_document(text: str | bytes, *, source: str = "<input>", max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """Parse ``text`` as JSON (when it starts like JSON) or else YAML; return plain JSON-like values."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ValidationError(
            [Issue("", f"document is {size} bytes; the limit is {max_bytes} bytes")], subject=source
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            where = _position(text, error.start, b"\n")
            raise ValidationError(
                [Issue("", f"{where}: not UTF-8 text (invalid byte 0x{text[error.start]:02x})")],
                subject=source,
            ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise ValidationError([Issue("", "document is empty")], subject=source)
    value = _load_json(text, source) if text.lstrip()[:1] in ("{", "[") else _load_yaml(text, source)
    check_document_shape(value, subject=source)
    return value


def _position(text: Any, offset: int, newline: Any = "\n") -> str:
    """``line L, column C`` (1-based) of ``offset`` in ``text`` (str or bytes, with its newline)."""
    line = text.count(newline, 0, offset) + 1
    column = offset - text.rfind(newline, 0, offset)
    return f"line {line}, column {column}"


def check_document_shape(document: object, *, subject: str = "document") -> None:
    """Refuse values nested too deeply or too large to walk (this also stops cyclic Python objects),
    and strings or keys holding a NUL character: nothing downstream can carry one (a command line, an
    environment variable, a PostgreSQL text column), so it is refused here, at its JSON path."""
    stack: list[tuple[object, int]] = [(document, 1)]
    seen = 0
    nul = False
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_DOCUMENT_VALUES:
            raise ValidationError(
                [Issue("", f"document holds more than {MAX_DOCUMENT_VALUES} values")], subject=subject
            )
        if depth > MAX_DOCUMENT_DEPTH:
            raise ValidationError(
                [Issue("", f"document nests deeper than {MAX_DOCUMENT_DEPTH} levels")], subject=subject
            )
        if isinstance(value, str):
            nul = nul or "\x00" in value
        elif isinstance(value, Mapping):
            nul = nul or any(isinstance(key, str) and "\x00" in key for key in value)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((item, depth + 1) for item in value)
    if nul:
        raise ValidationError(
            [Issue(path, "must not contain a NUL character (U+0000)") for path in _nul_paths(document, "")],
            subject=subject,
        )


def _nul_paths(value: object, path: str) -> list[str]:
    """JSON paths of the strings and keys holding a NUL (the shape is already known to be bounded)."""
    if isinstance(value, str):
        return [path] if "\x00" in value else []
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            child = _join(path, str(key))
            if isinstance(key, str) and "\x00" in key:
                found.append(child)
            found.extend(_nul_paths(item, child))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found.extend(_nul_paths(item, f"{path}[{index}]"))
    return found


# ---------------------------------------------------------------------------------------------------
# JSON


class _DuplicateKey(Exception):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _load_json(text: str, source: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_pairs_without_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        issue = Issue("", f"line {error.lineno}, column {error.colno}: invalid JSON: {error.msg}")
    except _DuplicateKey:
        issue = _locate_duplicate_json_key(text)
    except RecursionError:
        issue = Issue("", f"document nests deeper than {MAX_DOCUMENT_DEPTH} levels")
    except ValueError as error:  # NaN/Infinity, or an integer too long to convert
        issue = Issue("", f"invalid JSON: {error}")
    raise ValidationError([issue], subject=source)


def _locate_duplicate_json_key(text: str) -> Issue:
    """Find the first duplicate key of well-formed JSON ``text`` with its JSON path, line and column.

    ``json`` reports no position to ``object_pairs_hook``, so this second pass (taken only on the
    error path) follows the tokens and tracks where it is.
    """
    # Each frame: [is_object, path, keys seen, expecting key, next list index, pending key]
    frames: list[list[Any]] = []
    path = ""
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        top = frames[-1] if frames else None
        if token in "{[":
            child = _child_path(top, path)
            frames.append([token == "{", child, set(), token == "{", 0, None])
            path = child
        elif token in "}]":
            frames.pop()
            path = frames[-1][1] if frames else ""
        elif token == ",":
            if top is not None and top[0]:
                top[3] = True
        elif token == ":":
            continue
        elif top is not None and top[0] and top[3]:
            key = json.loads(token)
            if key in top[2]:
                line = text.count("\n", 0, match.start()) + 1
                column = match.start() - text.rfind("\n", 0, match.start())
                return Issue(_join(top[1], key), f"line {line}, column {column}: duplicate key '{key}'")
            top[2].add(key)
            top[3] = False
            top[5] = key
        else:
            _child_path(top, path)  # a scalar value: advance the list index
    return Issue("", "duplicate key")


def _child_path(frame: list[Any] | None, path: str) -> str:
    if frame is None:
        return ""
    if frame[0]:
        return _join(frame[1], frame[5])
    index = frame[4]
    frame[4] += 1
    return f"{frame[1]}[{index}]"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ---------------------------------------------------------------------------------------------------
# YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates as strings, refuses duplicate keys and bounds alias expansion."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            anchor: str = self.peek_event().anchor  # type: ignore[no-untyped-call]
            anchored = self.anchors.get(anchor)
            if anchored is not None and id(anchored) not in self._sizes:
                # The alias points into the node that holds it: the value would contain itself.
                raise yaml.YAMLError(f"{_mark(anchored)}: recursive alias '{anchor}'")
            return super().compose_node(parent, index)
        node = super().compose_node(parent, index)
        if node is not None:
            self._sizes[id(node)] = self._size(node)
        return node

    def _size(self, node: Node) -> int:
        """Values ``node`` stands for once aliases are expanded (children are composed already)."""
        size = 1
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [item for pair in node.value for item in pair]
        for child in children:
            size += self._sizes.get(id(child), 1)
        if size > MAX_DOCUMENT_VALUES:
            raise yaml.YAMLError(
                f"document expands to more than {MAX_DOCUMENT_VALUES} values (aliases) at {_mark(node)}"
            )
        return size

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                raise yaml.YAMLError(f"{_mark(key_node)}: keys must be strings (quote the key)")
            if key_node.value in seen:
                raise yaml.YAMLError(f"{_mark(key_node)}: duplicate key '{key_node.value}'")
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


# Dates and times stay strings: templates and JSON have no date type.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _refuse(loader: yaml.SafeLoader, node: Node) -> Any:
    raise ConstructorError(None, None, f"YAML type {node.tag} has no JSON equivalent", node.start_mark)


def _finite_float(loader: yaml.SafeLoader, node: Node) -> float:
    value = loader.construct_yaml_float(node)  # type: ignore[arg-type]
    if not math.isfinite(value):
        raise ConstructorError(
            None, None, "NaN and infinite numbers have no JSON equivalent", node.start_mark
        )
    return value


for _tag in ("binary", "set", "omap", "pairs", "timestamp"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse)
_Loader.add_constructor("tag:yaml.org,2002:float", _finite_float)


def _mark(node: Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def _load_yaml(text: str, source: str) -> Any:
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # reads ahead: may already refuse control characters
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = error.problem or error.context or "invalid YAML"
        issue = Issue("", f"{where}invalid YAML: {problem}")
    except yaml.reader.ReaderError as error:
        # The reader refuses control characters (NUL, ESC, ...); it gives a character offset only.
        character = chr(error.character) if isinstance(error.character, int) else str(error.character)
        issue = Issue(
            "",
            f"{_position(text, error.position)}: invalid YAML: character U+{ord(character[:1] or '?'):04X}"
            " is not allowed (control characters cannot appear in YAML text)",
        )
    except yaml.YAMLError as error:
        issue = Issue("", str(error))
    except RecursionError:
        issue = Issue("", f"document nests deeper than {MAX_DOCUMENT_DEPTH} levels")
    except ValueError as error:  # an integer too long to convert
        issue = Issue("", f"invalid YAML: {error}")
    finally:
        if loader is not None:
            loader.dispose()
    raise ValidationError([issue], subject=source)

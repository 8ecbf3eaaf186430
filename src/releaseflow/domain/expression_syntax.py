r"""The syntax of ``${...}`` expressions: tree, recursive-descent parser, canonical formatter.

Grammar (whitespace is allowed between tokens, not inside paths)::

    expression := literal | path | call | function-literal | regex-literal
    path       := ("args" | "refs" | "secrets") ("." segment | "[" (integer | string) "]")+
                  | parameter ("." segment | "[" ... "]")*
    call       := "fn." name "(" [expression ("," expression)*] ")"
    literal    := string ('...' or "..." with \\ \' \" \n \r \t \b \f \v \0 \/ \$ \uXXXX escapes)
                  | number (-12, 3.5, 1e3) | true | false | null
    function-literal := "(" [param ["," param]] ")" "=>" expression | param "=>" expression
    regex-literal    := "/" pattern "/" flags        (only as the pattern of search/replace/split)

A segment is letters, digits, ``_`` and ``-`` (so ``refs.svc.ports.0.dns`` indexes an array); other keys
use brackets: ``refs.svc["a.b"]``. ``template.`` before a namespace (``${template.args.X}``) is the same
as without it. Function literals are only allowed as the predicate of ``fn.find/some/every/filter/map``,
and regex literals only as a pattern; the parser enforces both, so evaluation only ever sees JSON values
elsewhere. Semantics are in ``expressions``; the function library in ``functions``.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NoReturn, TypeAlias

from releaseflow.domain.errors import ExpressionError
from releaseflow.domain.functions import FUNCTIONS, RegexValue

MAX_EXPRESSION_LENGTH = 10_000
MAX_NESTING_DEPTH = 64


_RANDOM_FUNCTIONS = frozenset({"randomSecret", "randomString"})
_NAMESPACES = ("args", "refs", "secrets")
_RESERVED = frozenset({"args", "refs", "secrets", "fn", "template", "true", "false", "null"})
# --- syntax tree ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Regex:
    value: RegexValue


@dataclass(frozen=True, slots=True)
class Path:
    root: str  # "args" | "refs" | "secrets" | "param" (a function literal's parameter)
    name: str  # the argument key, ref, secret id or parameter name
    segments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    occurrence: int = 0  # for random functions: their position among random calls in the string


@dataclass(frozen=True, slots=True)
class Lambda:
    params: tuple[str, ...]
    body: Node


Node: TypeAlias = Literal | Regex | Path | Call | Lambda


@dataclass(frozen=True, slots=True)
class Expression:
    """One ``${...}`` of a string: its text and either its tree or why it does not parse."""

    source: str  # the text between ``${`` and ``}``, stripped
    node: Node | None
    error: str | None = None
    closed: bool = True  # False when no ``}`` ends it
    refs: frozenset[str] = frozenset()
    args: frozenset[str] = frozenset()


# --- parser -----------------------------------------------------------------------------------------

_WS = re.compile(r"[ \t\r\n]*")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_INDEX = re.compile(r"[0-9]+")
_FLAGS = re.compile(r"[A-Za-z]*")
_STRING_RUN = re.compile(r"[^'\"\\]+")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_ESCAPES = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
    "/": "/",
    "$": "$",
}
_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "g": 0, "u": 0}
_PREDICATE_FNS = ", ".join(f"fn.{n}" for n, s in FUNCTIONS.items() if s.predicate_positions)
_PATTERN_FNS = ", ".join(f"fn.{n}" for n, s in FUNCTIONS.items() if s.pattern_positions)


class _ParseError(Exception):
    def __init__(self, message: str, at_end: bool) -> None:
        super().__init__(message)
        self.message = message
        self.at_end = at_end  # the text ended before the expression did


class _Parser:
    """Recursive descent over ``text[pos:end]``; ``end`` bounds how far one expression may reach."""

    def __init__(self, text: str, pos: int, end: int, random_calls: int = 0) -> None:
        self.text = text
        self.pos = pos
        self.end = end
        self.random_calls = random_calls

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < self.end else ""

    def found(self) -> str:
        return "the end of the text" if self.pos >= self.end else repr(self.text[self.pos])

    def fail(self, message: str) -> NoReturn:
        raise _ParseError(message, self.pos >= self.end)

    def ws(self) -> None:
        match = _WS.match(self.text, self.pos, self.end)
        self.pos = match.end() if match else self.pos

    def match(self, pattern: re.Pattern[str]) -> str | None:
        match = pattern.match(self.text, self.pos, self.end)
        if match is None:
            return None
        self.pos = match.end()
        return match.group()

    def arrow_follows(self) -> bool:
        return self.pos + 2 <= self.end and self.text.startswith("=>", self.pos)

    def expression(self, depth: int, params: frozenset[str]) -> Node:
        if depth > MAX_NESTING_DEPTH:
            self.fail(f"the expression nests deeper than {MAX_NESTING_DEPTH} levels")
        self.ws()
        char = self.peek()
        if char in ("'", '"'):
            return Literal(self.string())
        if char == "/":
            return Regex(self.regex())
        if char and char in "-0123456789":
            return Literal(self.number())
        if char == "(":
            return self.function_literal(depth, params)
        start = self.pos
        name = self.match(_IDENT)
        if name is None:
            self.fail(f"expected a value, found {self.found()}")
        after_name = self.pos
        self.ws()
        if self.arrow_follows():
            self.pos = start
            return self.function_literal(depth, params)
        self.pos = after_name
        if name in ("true", "false", "null"):
            return Literal({"true": True, "false": False, "null": None}[name])
        if name in params:
            return Path("param", name, self.segments())
        if name == "template":
            if self.peek() != ".":
                self.fail("expected '.' after 'template' (e.g. template.args.KEY)")
            self.pos += 1
            name = self.match(_IDENT) or ""
            if name not in ("args", "refs", "secrets", "fn"):
                self.fail(f"unknown namespace 'template.{name}' (expected template.args, template.refs, ...)")
        if name == "fn":
            return self.call(depth, params)
        if name in _NAMESPACES:
            if self.peek() not in (".", "["):
                self.fail(f"'{name}' must be followed by a name, e.g. {name}.NAME")
            first, *rest = self.segments()
            self.ws()
            if self.peek() == "(":
                self.fail("only functions can be called: fn.<name>(...)")
            return Path(name, first, tuple(rest))
        self.fail(f"unknown namespace '{name}' (expected args, refs, fn, secrets or template)")

    def segments(self) -> tuple[str, ...]:
        found: list[str] = []
        while True:
            char = self.peek()
            if char == ".":
                self.pos += 1
                segment = self.match(_SEGMENT)
                if segment is None:
                    self.fail(f"expected a name or index after '.', found {self.found()}")
                found.append(segment)
            elif char == "[":
                self.pos += 1
                self.ws()
                if self.peek() in ("'", '"'):
                    found.append(self.string())
                else:
                    index = self.match(_INDEX)
                    if index is None:
                        self.fail(f"expected an index or a quoted key after '[', found {self.found()}")
                    found.append(index)
                self.ws()
                if self.peek() != "]":
                    self.fail(f"expected ']', found {self.found()}")
                self.pos += 1
            else:
                return tuple(found)

    def call(self, depth: int, params: frozenset[str]) -> Call:
        if self.peek() != ".":
            self.fail("expected '.' and a function name after 'fn'")
        self.pos += 1
        name = self.match(_IDENT)
        if name is None:
            self.fail(f"expected a function name after 'fn.', found {self.found()}")
        spec = FUNCTIONS.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, FUNCTIONS, n=1)
            hint = f" (did you mean fn.{close[0]}?)" if close else ""
            self.fail(f"unknown function 'fn.{name}'{hint}")
        self.ws()
        if self.peek() != "(":
            self.fail(f"fn.{name} must be called: fn.{name}(...)")
        self.pos += 1
        occurrence = 0
        if name in _RANDOM_FUNCTIONS:
            occurrence, self.random_calls = self.random_calls, self.random_calls + 1
        args: list[Node] = []
        self.ws()
        if self.peek() == ")":
            self.pos += 1
        else:
            while True:
                position = len(args)
                arg = self.expression(depth + 1, params)
                if position in spec.predicate_positions and not isinstance(arg, Lambda):
                    self.fail(
                        f"argument {position + 1} of fn.{name} must be a function literal "
                        "such as (item, index) => ..."
                    )
                if isinstance(arg, Lambda) and position not in spec.predicate_positions:
                    self.fail(f"a function literal can only be the predicate of {_PREDICATE_FNS}")
                if isinstance(arg, Regex) and position not in spec.pattern_positions:
                    self.fail(f"a regular expression can only be the pattern of {_PATTERN_FNS}")
                args.append(arg)
                self.ws()
                if self.peek() == ",":
                    self.pos += 1
                elif self.peek() == ")":
                    self.pos += 1
                    break
                else:
                    self.fail(f"expected ',' or ')' in the arguments of fn.{name}, found {self.found()}")
        arity_error = spec.arity_error(len(args))
        if arity_error:
            self.fail(arity_error)
        return Call(name, tuple(args), occurrence)

    def function_literal(self, depth: int, params: frozenset[str]) -> Lambda:
        names: list[str] = []
        if self.peek() == "(":
            self.pos += 1
            self.ws()
            while self.peek() != ")":
                name = self.match(_IDENT)
                if name is None:
                    self.fail(f"expected a parameter name, found {self.found()}")
                names.append(name)
                self.ws()
                if self.peek() == ",":
                    self.pos += 1
                    self.ws()
                elif self.peek() != ")":
                    self.fail(f"expected ',' or ')' after a parameter, found {self.found()}")
            self.pos += 1
        else:
            names.append(self.match(_IDENT) or "")
        self.ws()
        if not self.arrow_follows():
            self.fail(f"expected '=>' after the parameters, found {self.found()}")
        self.pos += 2
        if len(names) > 2:
            self.fail("a function literal takes at most two parameters: (item, index)")
        for name in names:
            if name in _RESERVED:
                self.fail(f"'{name}' cannot be a parameter name")
        if len(set(names)) != len(names):
            self.fail("parameter names must differ")
        body = self.expression(depth + 1, params | frozenset(names))
        if isinstance(body, Lambda | Regex):
            self.fail("a function literal must produce a value")
        return Lambda(tuple(names), body)

    def string(self) -> str:
        quote = self.peek()
        self.pos += 1
        out: list[str] = []
        while True:
            run = self.match(_STRING_RUN)
            if run is not None:
                out.append(run)
            char = self.peek()
            if not char:
                self.fail("unterminated string")
            self.pos += 1
            if char == quote:
                return "".join(out)
            if char != "\\":
                out.append(char)  # the other quote character
                continue
            escape = self.peek()
            if not escape:
                self.fail("unterminated string")
            self.pos += 1
            if escape in _ESCAPES:
                out.append(_ESCAPES[escape])
            elif escape == "u":
                digits = self.match(_HEX4)
                if digits is None:
                    self.fail("expected four hex digits after '\\u'")
                out.append(chr(int(digits, 16)))
            else:
                self.fail(f"unknown escape '\\{escape}' in a string (write '\\\\' for a backslash)")

    def number(self) -> int | float:
        text = self.match(_NUMBER)
        if text is None:
            self.fail(f"expected a number, found {self.found()}")
        if self.peek() and (self.peek() == "." or self.peek().isalnum() or self.peek() == "_"):
            self.fail(f"invalid number '{text}{self.peek()}'")
        if "." in text or "e" in text or "E" in text:
            value = float(text)
            if not math.isfinite(value):
                self.fail(f"the number {text} is out of range")
            return value
        try:
            return int(text)
        except ValueError:  # beyond Python's limit on digits
            self.fail("the number has too many digits")

    def regex(self) -> RegexValue:
        start = self.pos
        self.pos += 1
        in_class = False
        while True:
            char = self.peek()
            if not char or char == "\n":
                self.fail("unterminated regular expression")
            if char == "\\":
                self.pos += 2
                continue
            if char == "[":
                in_class = True
            elif char == "]":
                in_class = False
            elif char == "/" and not in_class:
                break
            self.pos += 1
        body = self.text[start + 1 : self.pos]
        self.pos += 1
        flags = self.match(_FLAGS) or ""
        if any(flag not in _REGEX_FLAGS for flag in flags) or len(set(flags)) != len(flags):
            self.fail(f"unknown regular expression flags '{flags}' (allowed: g, i, m, s, u)")
        if not body:
            self.fail("empty regular expression")
        py_flags = 0
        for flag in flags:
            py_flags |= _REGEX_FLAGS[flag]
        try:
            compiled = re.compile(body, py_flags)
        except (re.error, OverflowError, RecursionError, ValueError) as exc:
            self.fail(f"invalid regular expression /{body}/: {exc}")
        return RegexValue(compiled, "g" in flags, f"/{body}/{flags}")


def _names_used(node: Node, refs: set[str], args: set[str]) -> None:
    if isinstance(node, Path):
        if node.root == "refs":
            refs.add(node.name)
        elif node.root == "args":
            args.add(node.name)
    elif isinstance(node, Call):
        for arg in node.args:
            _names_used(arg, refs, args)
    elif isinstance(node, Lambda):
        _names_used(node.body, refs, args)


def _find_close(text: str, start: int) -> int | None:
    """Where a ``${`` that does not parse probably ends: the first ``}`` outside quotes and braces."""
    depth, quote, i = 0, "", start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in ("'", '"'):
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return None


def _parse_one(text: str, dollar: int, random_calls: int) -> tuple[Expression, int, int]:
    """Parse the ``${...}`` at ``dollar``: the expression, where the text continues, random calls."""
    start = dollar + 2
    end = min(len(text), start + MAX_EXPRESSION_LENGTH + 1)  # room for the closing brace
    parser = _Parser(text, start, end, random_calls)
    try:
        node = parser.expression(0, frozenset())
        if isinstance(node, Lambda | Regex):
            parser.fail(f"a {'function literal' if isinstance(node, Lambda) else 'regex'} is not a value")
        parser.ws()
        if parser.peek() != "}":
            parser.fail(f"expected '}}' to end the expression, found {parser.found()}")
    except _ParseError as exc:
        close = _find_close(text, start)
        if close is None:
            expression = Expression(text[start:].strip(), None, "unterminated '${' (no closing '}')", False)
            return expression, len(text), parser.random_calls
        message = exc.message
        if exc.at_end and end < len(text):
            message = f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters"
        return Expression(text[start:close].strip(), None, message), close + 1, parser.random_calls
    refs: set[str] = set()
    args: set[str] = set()
    _names_used(node, refs, args)
    source = text[start : parser.pos].strip()
    expression = Expression(source, node, None, True, frozenset(refs), frozenset(args))
    return expression, parser.pos + 1, parser.random_calls


@lru_cache(maxsize=4096)
def parse_string(text: str) -> tuple[str | Expression, ...]:
    """Split a string value into literal text and expressions (cached; never raises)."""
    parts: list[str | Expression] = []
    literal: list[str] = []
    i, random_calls = 0, 0
    while True:
        dollar = text.find("$", i)
        if dollar < 0:
            literal.append(text[i:])
            break
        if text.startswith("$${", dollar):
            literal.append(text[i:dollar] + "${")
            i = dollar + 3
        elif text.startswith("${", dollar):
            literal.append(text[i:dollar])
            if "".join(literal):
                parts.append("".join(literal))
            literal = []
            expression, i, random_calls = _parse_one(text, dollar, random_calls)
            parts.append(expression)
        else:
            literal.append(text[i : dollar + 1])
            i = dollar + 1
    if "".join(literal):
        parts.append("".join(literal))
    return tuple(parts)


@lru_cache(maxsize=1024)
def _parse_bare(source: str) -> Node | str:
    if len(source) > MAX_EXPRESSION_LENGTH:
        return f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters"
    parser = _Parser(source, 0, len(source))
    try:
        node = parser.expression(0, frozenset())
        parser.ws()
        if parser.peek():
            parser.fail(f"unexpected {parser.found()} after the expression")
        if isinstance(node, Lambda | Regex):
            parser.fail("a function literal or regex is not a value")
    except _ParseError as exc:
        return exc.message
    return node


def parse_expression(source: str) -> Node:
    """Parse the text of one expression, without ``${`` and ``}`` (cached)."""
    parsed = _parse_bare(source)
    if isinstance(parsed, str):
        raise ExpressionError(parsed, expression=clip(source))
    return parsed


def _quote(text: str) -> str:
    out = ["'"]
    for char in text:
        if char in ("\\", "'"):
            out.append("\\" + char)
        elif char in "\n\r\t\b\f\v\0":
            out.append("\\" + next(k for k, v in _ESCAPES.items() if v == char and k not in "\\'\"/$"))
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append("'")
    return "".join(out)


def format_expression(node: Node) -> str:
    """The canonical text of a tree; ``parse_expression(format_expression(n)) == n``."""
    if isinstance(node, Literal):
        value = node.value
        if isinstance(value, str):
            return _quote(value)
        if value is None or isinstance(value, bool):
            return {None: "null", True: "true", False: "false"}[value]
        return repr(value)
    if isinstance(node, Regex):
        return node.value.source
    if isinstance(node, Path):
        parts = [node.name if node.root == "param" else node.root]
        segments = node.segments if node.root == "param" else (node.name, *node.segments)
        for segment in segments:
            parts.append(f".{segment}" if _SEGMENT.fullmatch(segment) else f"[{_quote(segment)}]")
        return "".join(parts)
    if isinstance(node, Call):
        return f"fn.{node.name}({', '.join(format_expression(arg) for arg in node.args)})"
    return f"({', '.join(node.params)}) => {format_expression(node.body)}"


def escape(text: str) -> str:
    """Text that resolves to ``text`` itself: every ``${`` written as ``$${``."""
    return text.replace("${", "$${")


def clip(text: str, limit: int = 200) -> str:
    """Shorten ``text`` for a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."

r"""The ``${...}`` expression language of release flow templates: evaluation and resolution.

Pure: no I/O and no clock reads; the time ``fn.date`` prints comes from ``Scope.now``.

Where expressions go
    ``${...}`` may appear anywhere inside a JSON string value (object keys are never resolved). A string
    that is exactly one ``${...}`` yields the raw value (number, boolean, object, array, null); in any
    other string each result is written into the text: strings as they are, booleans as ``true``/
    ``false``, numbers as JSON writes them, arrays and objects as compact JSON, and null as nothing.
    Strings without ``${`` are returned unchanged; a ``$`` or ``{`` on its own is plain text.
    A literal ``${`` is written ``$${`` (``escape`` does this); ``$${`` never starts an expression. To put
    a ``$`` right before an expression, write the ``$`` as a string expression: ``${'$'}${args.PRICE}``.

Syntax (see ``expression_syntax`` for the grammar)
    ``args.KEY``, ``refs.<ref>.<path>`` (segments may be array indexes: ``refs.svc.ports.0.dns`` or
    ``ports[0]``), ``secrets.ID``, ``fn.<name>(arg, ...)`` with nested expressions or literals as
    arguments (quoted strings with escapes, numbers, ``true``/``false``/``null``), the ``template.``
    prefix (``${template.args.X}`` is ``args.X``), function literals ``(item, index) => ...`` as
    predicates of ``fn.filter`` and friends, and ``/regex/flags`` as patterns. There are no operators:
    ``fn.add``, ``fn.eq``, ``fn.and`` and the rest of ``functions`` do that work.

Missing values
    At the top level of an expression an argument, reference or secret that does not exist (or a field of
    it that does not exist) is an error naming it. Inside function arguments it is null (false in
    boolean functions), as Northflank documents, so ``${fn.if(args.DEBUG, 'debug', 'info')}`` works
    without a ``DEBUG`` argument.

Values in commands
    In a command field (``template_fields.Command``: a JobRun's custom command or entrypoint, an
    Action's ``execute`` command) each ``${...}`` is written as one quoted shell word, so values are
    data and never run as code; ``${fn.shellRaw(...)}`` opts out. The rule, and the places in a
    command where a value is refused, are in ``shell``. ``resolve`` finds these fields in the node
    documents it is given (and ``check_syntax`` checks them before any run).

Limits
    An expression is at most ``MAX_EXPRESSION_LENGTH`` characters and nests calls and function literals
    at most ``MAX_NESTING_DEPTH`` deep; documents nest at most ``MAX_VALUE_DEPTH`` levels. Exceeding a
    limit is an ``ExpressionError``, never a ``RecursionError``. Parsed strings are cached, so resolving
    the same node spec again costs only evaluation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, partial
from typing import Any

from releaseflow.domain.errors import ExpressionError, Issue
from releaseflow.domain.expression_syntax import (
    MAX_EXPRESSION_LENGTH,
    MAX_NESTING_DEPTH,
    Call,
    Expression,
    Lambda,
    Literal,
    Node,
    Path,
    Regex,
    clip,
    escape,
    format_expression,
    parse_expression,
    parse_string,
)
from releaseflow.domain.functions import FUNCTIONS, Args, CallContext, Predicate, to_text
from releaseflow.domain.shell import SHELL_FUNCTIONS, ShellText
from releaseflow.domain.template_fields import Obj, command_paths
from releaseflow.domain.template_format import NODE_KINDS

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "MAX_NESTING_DEPTH",
    "MAX_VALUE_DEPTH",
    "Call",
    "Expression",
    "Lambda",
    "Literal",
    "Node",
    "Path",
    "Regex",
    "Scope",
    "check_syntax",
    "escape",
    "find_expressions",
    "format_expression",
    "is_truthy",
    "parse_expression",
    "parse_string",
    "referenced_args",
    "referenced_refs",
    "resolve",
    "resolve_partially",
]

MAX_VALUE_DEPTH = 256  # levels of nesting in a document; deeper is refused, not a RecursionError


@dataclass(frozen=True, kw_only=True)
class Scope:
    """Everything an expression can see. ``refs`` holds only the nodes that have run."""

    args: Mapping[str, Any] = field(default_factory=dict)
    refs: Mapping[str, Any] = field(default_factory=dict)  # ref -> that node's response data
    now: datetime  # aware; fn.date prints it in UTC
    secret_seed: str = ""  # per release flow: keeps fn.randomSecret stable across runs
    secrets: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("Scope.now must be a timezone-aware datetime (UTC)")


# --- evaluation -------------------------------------------------------------------------------------

_KINDS = {"args": "argument", "refs": "reference", "secrets": "secret"}


def _walk_path(value: Any, segments: tuple[str, ...]) -> tuple[int, Any]:
    """Follow ``segments`` from ``value``: (-1, found value) or (index of the missing segment, None)."""
    for i, segment in enumerate(segments):
        if isinstance(value, Mapping):
            if segment not in value:
                return i, None
            value = value[segment]
        elif (
            isinstance(value, list | tuple)
            and segment.isascii()
            and segment.isdigit()
            and len(segment) < 18
            and int(segment) < len(value)
        ):
            value = value[int(segment)]
        else:
            return i, None
    return -1, value


class _Evaluator:
    def __init__(self, scope: Scope, path: str) -> None:
        self.scope = scope
        self.path = path

    def evaluate(self, node: Node, env: Mapping[str, Any] | None, nested: bool) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Path):
            return self.lookup(node, env or {}, nested)
        if isinstance(node, Call):
            return self.call(node, env)
        if isinstance(node, Regex):
            return node.value
        raise ExpressionError("a function literal is not a value")  # the parser prevents this

    def lookup(self, node: Path, env: Mapping[str, Any], nested: bool) -> Any:
        if node.root == "param":
            return _walk_path(env.get(node.name), node.segments)[1]
        source = {"args": self.scope.args, "refs": self.scope.refs, "secrets": self.scope.secrets}[node.root]
        kind = _KINDS[node.root]
        if node.name not in source:
            if nested:
                return None
            if node.root == "refs":
                raise ExpressionError(
                    f"reference '{node.name}' is not available: no node with that ref has run"
                )
            raise ExpressionError(f"{kind} '{node.name}' is not defined")
        missing, value = _walk_path(source[node.name], node.segments)
        if missing >= 0:
            if nested:
                return None
            field_path = ".".join(node.segments[: missing + 1])
            raise ExpressionError(f"{kind} '{node.name}' has no field '{field_path}'")
        return value

    def call(self, node: Call, env: Mapping[str, Any] | None) -> Any:
        spec = FUNCTIONS[node.name]
        values: list[Any] = []
        for arg in node.args:
            if isinstance(arg, Lambda):
                values.append(self.closure(arg, env))
            elif spec.lazy:
                values.append(partial(self.evaluate, arg, env, True))
            else:
                values.append(self.evaluate(arg, env, True))
        context = CallContext(
            now=self.scope.now,
            secret_seed=self.scope.secret_seed,
            secrets=self.scope.secrets,
            path=self.path,
            occurrence=node.occurrence,
        )
        try:
            return spec.impl(context, Args(node.name, values))
        except (ArithmeticError, ValueError, re.error, RecursionError) as exc:
            raise ExpressionError(f"fn.{node.name} failed: {exc}") from exc

    def closure(self, node: Lambda, env: Mapping[str, Any] | None) -> Predicate:
        def apply(item: Any, index: int) -> Any:
            local = dict(env or {})
            local.update(zip(node.params, (item, index), strict=False))
            return self.evaluate(node.body, local, True)

        return apply


def _problem(expression: Expression, reason: str) -> str:
    """What an Issue says: the reason and the expression as written."""
    if not expression.closed:
        return f"{reason}: '${{{clip(expression.source)}'"
    return str(ExpressionError(reason, expression=clip(expression.source)))


def _located(path: str, expression: Expression, reason: str) -> ExpressionError:
    prefix = f"{path}: " if path else ""
    if not expression.closed:
        return ExpressionError(f"{prefix}{_problem(expression, reason)}")
    return ExpressionError(prefix + reason, expression=clip(expression.source))


def _value(node: Node, scope: Scope, path: str, whole: bool) -> Any:
    """The value of a parsed expression: raw when it is the whole string, else as text."""
    value = _Evaluator(scope, path).evaluate(node, None, False)
    return _copy(value) if whole else to_text(value)


def _evaluate(expression: Expression, scope: Scope, path: str, whole: bool) -> Any:
    """``_value``, with errors that name the path and the expression."""
    if expression.node is None:
        raise _located(path, expression, expression.error or "invalid expression")
    try:
        return _value(expression.node, scope, path, whole)
    except ExpressionError as exc:
        raise _located(path, expression, exc.reason) from exc


def _copy(value: Any) -> Any:
    """A fresh JSON-like copy, so a resolved document never aliases scope data."""
    try:
        return _copy_inner(value)
    except RecursionError as exc:
        raise ExpressionError("the value is nested too deeply") from exc


def _copy_inner(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy_inner(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_inner(item) for item in value]
    return value


def _resolve_string(text: str, scope: Scope, path: str) -> Any:
    if "${" not in text:
        return text
    parts = parse_string(text)
    if len(parts) == 1 and isinstance(parts[0], Expression):
        return _evaluate(parts[0], scope, path, whole=True)
    return "".join(part if isinstance(part, str) else _evaluate(part, scope, path, False) for part in parts)


def _exempt(part: Expression) -> bool:
    """A ``${fn.shellRaw(...)}`` or ``${fn.shellQuote(...)}``: written into a command as it is."""
    return isinstance(part.node, Call) and part.node.name in SHELL_FUNCTIONS


def _resolve_command(text: str, scope: Scope, path: str) -> str:
    """A command field: each value written as a quoted shell word for its place (see ``shell``)."""
    if "${" not in text:
        return text
    parts = parse_string(text)
    values = [part if isinstance(part, str) else _evaluate(part, scope, path, False) for part in parts]
    try:
        return _join_command(parts, values)
    except _Unquotable as refused:
        raise _located(path, refused.part, refused.reason) from None


class _Unquotable(Exception):
    def __init__(self, part: Expression, reason: str) -> None:
        super().__init__(reason)
        self.part = part
        self.reason = reason


def _join_command(parts: tuple[str | Expression, ...], values: list[str]) -> str:
    """Literal text and the text of each expression's value, each value quoted for its place."""
    shell = ShellText()
    out: list[str] = []
    for part, value in zip(parts, values, strict=True):
        if isinstance(part, str) or _exempt(part):
            shell.feed(value)
            out.append(value)
            continue
        try:
            out.append(shell.splice(value))
        except ExpressionError as exc:
            raise _Unquotable(part, exc.reason) from None
    return "".join(out)


def _command_issues(text: str, path: str) -> list[Issue]:
    """Values placed where quoting cannot make them data, found before any run (see ``shell``)."""
    shell = ShellText()
    for part in parse_string(text):
        if isinstance(part, str):
            shell.feed(part)
        elif _exempt(part):
            assert isinstance(part.node, Call)
            if part.node.name == "shellRaw":
                return []  # the raw text is unknown until the run: the quoting after it is too
            shell.feed("''")  # a quoted word leaves the quoting as it was
        elif (reason := shell.refusal()) is not None:
            return [Issue(path, _problem(part, reason))]
        else:
            shell.splice("")
    return []


@cache
def _node_fields(kind: str) -> Obj:
    return NODE_KINDS[kind].node_fields()


def _command_fields(value: Any, path: str) -> frozenset[str]:
    """JSON paths of the command fields of the node document ``value`` and of the steps it holds."""
    found: set[str] = set()
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, at = stack.pop()
        kind = node.get("kind") if isinstance(node, Mapping) else None
        if not isinstance(kind, str) or kind not in NODE_KINDS:
            continue
        found.update(command_paths(_node_fields(kind), node, at))
        steps = node["spec"].get("steps") if isinstance(node.get("spec"), Mapping) else None
        if kind == "Workflow" and isinstance(steps, list):
            stack.extend(
                (step, f"{at}.spec.steps[{i}]" if at else f"spec.steps[{i}]") for i, step in enumerate(steps)
            )
    return frozenset(found)


def _partial_string(text: str, scope: Scope, path: str, issues: list[Issue], command: bool) -> Any:
    if "${" not in text:
        return text
    parts = parse_string(text)
    whole = len(parts) == 1 and isinstance(parts[0], Expression)
    out: list[Any] = []
    complete = True
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif part.node is None:
            issues.append(Issue(path, _problem(part, part.error or "invalid expression")))
            complete = False
        elif not all(ref in scope.refs for ref in part.refs):
            complete = False  # depends on a node that has not run: resolved when it has
        else:
            try:
                out.append(_value(part.node, scope, path, whole))
            except ExpressionError as exc:
                issues.append(Issue(path, _problem(part, exc.reason)))
                complete = False
    if not complete:
        if command:
            issues.extend(_command_issues(text, path))
        return text
    if command:
        try:
            return _join_command(parts, [to_text(value) for value in out])
        except _Unquotable as refused:
            issues.append(Issue(path, _problem(refused.part, refused.reason)))
            return text
    return out[0] if whole else "".join(out)


# --- walking documents ------------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$@-]+")


def _key_path(path: str, key: Any) -> str:
    text = str(key)
    if _PLAIN_KEY.fullmatch(text):
        return f"{path}.{text}" if path else text
    return f"{path}[{json.dumps(text)}]"


def _too_deep(path: str) -> ExpressionError:
    return ExpressionError(f"{path or 'the document'}: nested deeper than {MAX_VALUE_DEPTH} levels")


def _strings(value: Any, path: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    """Every string that contains ``${``, with its JSON path, in document order."""
    if depth > MAX_VALUE_DEPTH:
        raise _too_deep(path)
    if isinstance(value, str):
        if "${" in value:
            yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, _key_path(path, key), depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]", depth + 1)


def _expressions(value: Any, path: str) -> Iterator[tuple[str, Expression]]:
    for string_path, text in _strings(value, path):
        for part in parse_string(text):
            if isinstance(part, Expression):
                yield string_path, part


def find_expressions(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every ``${...}`` in a JSON-like value: (JSON path of its string, the text between ``${`` and ``}``).

    Expressions that do not parse are included; an unterminated ``${`` is not (``check_syntax`` reports it).
    """
    return [(where, expr.source) for where, expr in _expressions(value, path) if expr.closed]


def check_syntax(value: Any, path: str = "") -> list[Issue]:
    """One Issue per expression that does not parse (unknown namespace or function, wrong arity, ...),
    and one per value placed in a command where it cannot be quoted (see ``shell``)."""
    try:
        issues = [
            Issue(where, _problem(expr, expr.error))
            for where, expr in _expressions(value, path)
            if expr.error is not None
        ]
        commands = _command_fields(value, path)
        if commands:
            for where, text in _strings(value, path):
                if where in commands:
                    issues.extend(_command_issues(text, where))
        return issues
    except ExpressionError as exc:
        return [Issue("", str(exc))]


def referenced_refs(value: Any) -> set[str]:
    """The ``<ref>`` of every ``refs.<ref>...`` in the value (function literals included)."""
    return {ref for _, expr in _expressions(value, "") for ref in expr.refs}


def referenced_ref_fields(value: Any, path: str = "") -> list[tuple[str, str, str | None]]:
    """(JSON path of its string, ref, first field or None) of every ``refs.<ref>...`` in the value."""
    found: list[tuple[str, str, str | None]] = []

    def visit(where: str, node: Node | None) -> None:
        if isinstance(node, Path) and node.root == "refs":
            found.append((where, node.name, node.segments[0] if node.segments else None))
        elif isinstance(node, Call):
            for arg in node.args:
                visit(where, arg)
        elif isinstance(node, Lambda):
            visit(where, node.body)

    for where, expr in _expressions(value, path):
        visit(where, expr.node)
    return found


def referenced_args(value: Any) -> set[str]:
    """The ``KEY`` of every ``args.KEY...`` in the value."""
    return {arg for _, expr in _expressions(value, "") for arg in expr.args}


def resolve(value: Any, scope: Scope, path: str = "") -> Any:
    """The value with every expression resolved; an ``ExpressionError`` names the path and expression.

    Missing arguments, references, secrets and fields are errors at the top level of an expression.
    ``fn.randomSecret``/``fn.randomString`` derive from ``path``: pass the field's real JSON path.
    """
    return _resolve(value, scope, path, 0, _command_fields(value, path))


def _resolve(value: Any, scope: Scope, path: str, depth: int, commands: frozenset[str]) -> Any:
    if depth > MAX_VALUE_DEPTH:
        raise _too_deep(path)
    if isinstance(value, str):
        if path in commands:
            return _resolve_command(value, scope, path)
        return _resolve_string(value, scope, path)
    if isinstance(value, Mapping):
        return {
            key: _resolve(item, scope, _key_path(path, key), depth + 1, commands)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_resolve(item, scope, f"{path}[{i}]", depth + 1, commands) for i, item in enumerate(value)]
    return value


def resolve_partially(value: Any, scope: Scope, path: str = "") -> tuple[Any, list[Issue]]:
    """The dry run: resolve what does not need a ref missing from ``scope.refs``, report what fails.

    A string that uses such a ref is left as written (its other expressions are still checked); a
    string with a failing expression is left as written too, and each failure is one Issue.
    """
    issues: list[Issue] = []
    return _partial(value, scope, path, 0, issues, _command_fields(value, path)), issues


def _partial(
    value: Any, scope: Scope, path: str, depth: int, issues: list[Issue], commands: frozenset[str]
) -> Any:
    if depth > MAX_VALUE_DEPTH:
        issues.append(Issue(path, f"nested deeper than {MAX_VALUE_DEPTH} levels"))
        return value
    if isinstance(value, str):
        return _partial_string(value, scope, path, issues, path in commands)
    if isinstance(value, Mapping):
        return {
            k: _partial(v, scope, _key_path(path, k), depth + 1, issues, commands) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_partial(v, scope, f"{path}[{i}]", depth + 1, issues, commands) for i, v in enumerate(value)]
    return value


def is_truthy(value: Any) -> bool:
    """Whether a resolved ``skipNodeExecution`` says skip: ``True``, or the string ``"true"``.

    The string is compared without case and surrounding whitespace. Everything else, including ``1``,
    ``"yes"`` and unresolved text, is false: a node runs unless it is clearly told to skip.
    """
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"

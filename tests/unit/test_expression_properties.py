"""Property tests: no input breaks the expression language with anything but an ExpressionError."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releaseflow.domain.errors import ExpressionError
from releaseflow.domain.expressions import (
    Call,
    Lambda,
    Literal,
    Node,
    Path,
    Scope,
    check_syntax,
    escape,
    find_expressions,
    format_expression,
    is_truthy,
    parse_expression,
    parse_string,
    referenced_args,
    referenced_refs,
    resolve,
    resolve_partially,
)
from releaseflow.domain.functions import FUNCTIONS

NOW = datetime(2025, 5, 14, 22, 0, tzinfo=UTC)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    scalars | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

# --- trees: format and parse are inverses ------------------------------------------------------------

keys = st.sampled_from(["K", "L", "r", "a", "list", "0", "1", "S", "x"]) | st.text(min_size=1, max_size=4)
literals = st.builds(Literal, scalars | st.text(max_size=10))
paths = st.builds(
    Path, st.sampled_from(["args", "refs", "secrets"]), keys, st.lists(keys, max_size=3).map(tuple)
)
regexes = st.sampled_from(["/a+/g", "/[0-9]/", "/x|y/i", "/(a)(b)?/"]).map(
    lambda source: cast(Call, parse_expression(f"fn.search('', {source})")).args[1]
)
PLAIN_FUNCTIONS = sorted(
    name
    for name, spec in FUNCTIONS.items()
    if not spec.predicate_positions and name not in ("randomSecret", "randomString")
)


@st.composite
def calls(draw: st.DrawFn, children: st.SearchStrategy[Node]) -> Node:
    if draw(st.booleans()):
        name = draw(st.sampled_from(["filter", "map", "some", "every", "find"]))
        params = draw(st.sampled_from([(), ("item",), ("item", "index")]))
        item = st.just(Path("param", "item", ()))
        body = draw(children | item if params else children)
        return Call(name, (draw(children), Lambda(params, body)))
    name = draw(st.sampled_from(PLAIN_FUNCTIONS))
    spec = FUNCTIONS[name]
    high = spec.max_args if spec.max_args is not None else spec.min_args + 2
    count = draw(st.integers(spec.min_args, high))
    args = [draw(regexes | children if i in spec.pattern_positions else children) for i in range(count)]
    return Call(name, tuple(args))


nodes: st.SearchStrategy[Node] = st.recursive(literals | paths, calls, max_leaves=12)


def _mutate(text: str, position: int, fragment: str, delete: bool) -> str:
    cut = position % (len(text) + 1)
    return text[:cut] + text[cut + 1 :] if delete else text[:cut] + fragment + text[cut:]


# Pieces that make random text likely to hit the parser's corners.
FRAGMENTS = [
    "${", "$${", "$", "{", "}", "(", ")", "[", "]", ",", ".", "'", '"', "\\", "/", "=>", " ",
    "args", "refs", "secrets", "template", "fn", "x", "K", "0", "1", "-2", "3.5", "1e999", "true", "null",
    "fn.add", "fn.if", "fn.eq", "fn.filter", "fn.map", "fn.replace", "fn.split", "fn.date", "fn.parseJSON",
    "fn.divide", "fn.exp", "fn.randomSecret", "fn.get", "fn.slice", "fn.fromBase64", "fn.join", "fn.concat",
    "args.K", "args.L", "refs.r.a", "refs.r.list.0", "refs.missing.x", "secrets.S", "(a, i) => a",
    "/a+/g", "/[/", "'\\u12'", "'\\q'", "9" * 30,
]  # fmt: skip
fragment_soup = st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join)
valid_expressions = nodes.map(format_expression)
broken_expressions = st.builds(
    _mutate, valid_expressions, st.integers(0, 200), st.sampled_from(FRAGMENTS), st.booleans()
)
embedded = st.lists(
    st.text(max_size=5) | valid_expressions.map("${{{}}}".format) | broken_expressions.map("${{{}}}".format),
    max_size=4,
).map("".join)
texts = st.text(max_size=60) | fragment_soup | embedded
documents = st.recursive(
    scalars | texts,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=15,
)
scopes = st.builds(
    lambda args, refs, secret: Scope(
        args={"K": args, "L": [args, "x"]},
        refs={"r": {"a": refs, "list": [refs]}},
        secrets={"S": secret},
        now=NOW,
        secret_seed="seed",
    ),
    json_values,
    json_values,
    st.text(max_size=10),
)


def _only_expression_errors(action: Any) -> None:
    with contextlib.suppress(ExpressionError):
        action()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, scopes)
def test_expressions__any_document_raises_only_expression_errors(document: Any, scope: Scope) -> None:
    _only_expression_errors(lambda: find_expressions(document, "spec"))
    _only_expression_errors(lambda: referenced_refs(document))
    _only_expression_errors(lambda: referenced_args(document))
    _only_expression_errors(lambda: resolve(document, scope, "spec"))
    issues = check_syntax(document, "spec")
    assert all(issue.path.startswith("spec") for issue in issues)
    resolved, partial_issues = resolve_partially(document, scope, "spec")
    assert all(isinstance(issue.message, str) and issue.message for issue in partial_issues)
    if not partial_issues and referenced_refs(document) <= set(scope.refs):
        # nothing deferred and nothing failed: the dry run resolved exactly what the real run does
        assert resolved == resolve(document, scope, "spec")


@settings(max_examples=400, deadline=None)
@given(texts, scopes)
def test_expressions__any_string_raises_only_expression_errors(text: str, scope: Scope) -> None:
    _only_expression_errors(lambda: resolve(text, scope))
    _only_expression_errors(lambda: parse_expression(text))
    assert isinstance(parse_string(text), tuple)


@given(texts, scopes)
def test_resolve__text_without_expressions_is_returned_unchanged(text: str, scope: Scope) -> None:
    plain = text.replace("${", "")
    if "${" not in plain:
        assert resolve(plain, scope) is plain


@given(texts, scopes)
def test_escape__resolves_back_to_the_original_text(text: str, scope: Scope) -> None:
    assert resolve(escape(text), scope) == text
    assert find_expressions(escape(text)) == []


@given(json_values)
def test_resolve__whole_field_argument_yields_the_raw_value(value: Any) -> None:
    scope = Scope(args={"V": value}, now=NOW)
    assert resolve("${args.V}", scope) == value
    assert resolve({"a": ["${template.args.V}"]}, scope) == {"a": [value]}


@given(st.one_of(json_values, texts))
def test_is_truthy__never_raises_and_is_true_only_for_true(value: Any) -> None:
    assert is_truthy(value) == (value is True or (isinstance(value, str) and value.strip().lower() == "true"))


@settings(max_examples=300)
@given(nodes)
def test_format_expression__parses_back_to_the_same_tree(node: Node) -> None:
    assert parse_expression(format_expression(node)) == node


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.text(max_size=8).map(lambda t: escape(t).rstrip("$")), nodes), max_size=4),
    st.text(max_size=8),
)
def test_find_expressions__finds_each_embedded_expression_in_order(
    pieces: list[tuple[str, Node]], tail: str
) -> None:
    text = "".join(f"{literal}${{{format_expression(node)}}}" for literal, node in pieces) + escape(tail)
    found = find_expressions({"spec": [text]})
    assert found == [("spec[0]", format_expression(node)) for _, node in pieces]
    assert check_syntax({"spec": [text]}) == []


@given(st.integers(1, 300), st.sampled_from(["hex", "base64"]), st.text(max_size=10))
def test_random_secret__has_the_length_asked_and_is_stable(length: int, encoding: str, seed: str) -> None:
    scope = Scope(now=NOW, secret_seed=seed)
    text = f"${{fn.randomSecret({length}, '{encoding}')}}"
    first = resolve(text, scope, "spec.a")
    assert len(first) == length
    assert resolve(text, scope, "spec.a") == first

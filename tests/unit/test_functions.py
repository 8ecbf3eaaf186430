"""The ``${fn.*}`` library, one family at a time, evaluated through ``resolve``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from releaseflow.domain.errors import ExpressionError
from releaseflow.domain.expressions import Scope, resolve
from releaseflow.domain.functions import FUNCTIONS

NOW = datetime(2025, 5, 14, 22, 3, 4, 567_000, tzinfo=UTC)  # a Wednesday
ARGS: dict[str, Any] = {
    "N": "3",
    "A": [1, 2, 3, 4],
    "B": [5],
    "WORDS": ["a", "b", "c"],
    "MIXED": ["a", 1, True, None, {"k": 1}],
    "M": [[1, 2], [3]],
    "OBJ": {"x": 1, "y": [True]},
    "PICK": 3,
}
REFS: dict[str, Any] = {
    "svc": {"ports": [{"dns": "a.example.com", "public": True}, {"dns": "b.internal", "public": False}]}
}


def ev(expression: str, *, path: str = "spec.x", **scope: Any) -> Any:
    fields: dict[str, Any] = {"args": ARGS, "refs": REFS, "secrets": {"S": "s3cr3t"}} | scope
    return resolve("${" + expression + "}", Scope(now=NOW, **fields), path)


def ev_error(expression: str, **scope: Any) -> str:
    with pytest.raises(ExpressionError) as caught:
        ev(expression, **scope)
    return str(caught.value)


def test_functions__every_northflank_function_is_registered() -> None:
    documented = [
        "toBase64",
        "fromBase64",
        "slug",
        "indexOf",
        "search",
        "replace",
        "replaceAll",
        "slice",
        "length",
        "toUpper",
        "toLower",
        "split",
        "join",
        "not",
        "or",
        "and",
        "if",
        "eq",
        "neq",
        "gt",
        "lt",
        "gte",
        "lte",
        "add",
        "subtract",
        "multiply",
        "divide",
        "remainder",
        "exp",
        "floor",
        "ceil",
        "get",
        "stringifyJSON",
        "parseJSON",
        "entries",
        "values",
        "keys",
        "find",
        "concat",
        "some",
        "every",
        "filter",
        "map",
        "arrSlice",
        "arrLength",
        "date",
        "randomSecret",
        "randomString",
        "fetchSecret",
    ]
    assert set(documented) <= set(FUNCTIONS)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("fn.not(1, 2)", "fn.not takes 1 argument, got 2"),
        ("fn.eq(1)", "fn.eq takes at least 2 arguments, got 1"),
        ("fn.slice('a')", "fn.slice takes 2 to 3 arguments, got 1"),
        ("fn.toUpper()", "fn.toUpper takes 1 argument, got 0"),
        ("fn.toupper('a')", "unknown function 'fn.toupper' (did you mean fn.toUpper?)"),
    ],
)
def test_functions__arity_and_names_are_checked(expression: str, message: str) -> None:
    assert message in ev_error(expression)


# --- strings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("fn.toBase64('héllo')", "aMOpbGxv"),
        ("fn.fromBase64('aMOpbGxv')", "héllo"),
        ("fn.fromBase64('aGk')", "hi"),  # padding is optional
        ("fn.toBase64(12)", "MTI="),
        ("fn.slug('My Service_Name!')", "my-service-name"),
        ("fn.slug('  Crème Brûlée  ')", "creme-brulee"),
        ("fn.indexOf('hello', 'l')", 2),
        ("fn.indexOf('hello', 'z')", -1),
        ("fn.search('abc123', /[0-9]/)", 3),
        ("fn.search('a.b', '.')", 1),  # a plain string is matched literally
        ("fn.search('abc', /z/)", -1),
        ("fn.replace('a-b-c', '-', '+')", "a+b-c"),
        ("fn.replaceAll('a-b-c', '-', '+')", "a+b+c"),
        ("fn.replace('a-b-c', /-/, '+')", "a+b-c"),
        ("fn.replace('a-b-c', /-/g, '+')", "a+b+c"),
        ("fn.replaceAll('a-b-c', /-/, '+')", "a+b+c"),
        ("fn.replace('Hello', /h/i, 'J')", "Jello"),
        ("fn.replace('ab', /(a)/, '$1\\\\1')", "$1\\1b"),  # replacement text is literal
        ("fn.slice('abcdef', 1, 3)", "bc"),
        ("fn.slice('abcdef', -2)", "ef"),
        ("fn.slice('abcdef', 4, 1)", ""),
        ("fn.length('héllo')", 5),
        ("fn.toUpper('abc')", "ABC"),
        ("fn.toLower('ABC')", "abc"),
        ("fn.split('a,b,c', ',')", ["a", "b", "c"]),
        ("fn.split('a,b,c', ',', 2)", ["a", "b"]),
        ("fn.split('abc', '')", ["a", "b", "c"]),
        ("fn.split('a1b22c', /[0-9]+/)", ["a", "b", "c"]),
        ("fn.join(args.WORDS)", "a,b,c"),
        ("fn.join(args.WORDS, '')", "abc"),
        ("fn.join(args.MIXED, ' ')", 'a 1 true  {"k":1}'),
    ],
)
def test_string_functions__compute_as_documented(expression: str, expected: Any) -> None:
    assert ev(expression) == expected


def test_from_base64__accepts_url_safe_alphabet() -> None:
    assert ev("fn.toBase64('??>')") == "Pz8+"
    assert ev("fn.fromBase64('Pz8-')") == "??>"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("fn.fromBase64('!!!')", "fn.fromBase64: string '!!!' is not valid base64"),
        ("fn.fromBase64('/w==')", "fn.fromBase64: the decoded bytes are not UTF-8 text"),
        ("fn.toUpper(args.A)", "fn.toUpper: argument 1 must be a string, got array"),
        ("fn.toUpper(args.MISSING)", "fn.toUpper: argument 1 must be a string, got null"),
        ("fn.length(args.A)", "use fn.arrLength for arrays"),
        ("fn.slice('abc', 1.5)", "fn.slice: argument 2 must be a whole number, got number 1.5"),
        ("fn.join('abc')", "fn.join: argument 1 must be an array, got string 'abc'"),
    ],
)
def test_string_functions__reject_wrong_types(expression: str, message: str) -> None:
    assert message in ev_error(expression)


# --- booleans ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        ("true", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("'false'", False),  # except "false", in any case: arguments are strings
        ("' FALSE '", False),
        ("'0'", True),
        ("''", False),
        ("'no'", True),
        ("null", False),
        ("args.MISSING", False),  # unresolved: false, as Northflank documents
        ("refs.notrun.id", False),
        ("args.A", True),
        ("fn.split('', ',')", True),  # [""]: any array is true
        ("0.0", False),
    ],
)
def test_boolean_functions__use_javascript_truthiness_with_false_strings(value: str, truthy: bool) -> None:
    assert ev(f"fn.not({value})") is (not truthy)
    assert ev(f"fn.if({value}, 'yes', 'no')") == ("yes" if truthy else "no")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("fn.or(false, 0, 'x')", True),
        ("fn.or(false, null)", False),
        ("fn.and(true, 1, 'yes')", True),
        ("fn.and(true, '')", False),
        ("fn.if(true, 'a', 'b')", "a"),
        ("fn.if(false, 'a')", None),
        ("fn.if(true, 1, fn.divide(1, 0))", 1),  # lazy: the other branch is never evaluated
        ("fn.or(true, fn.divide(1, 0))", True),
        ("fn.and(false, fn.divide(1, 0))", False),
        ("fn.eq(1, 1.0)", True),
        ("fn.eq('1', 1)", False),
        ("fn.eq(true, 1)", False),
        ("fn.eq(1, 1, 1)", True),
        ("fn.eq(1, 1, 2)", False),
        ("fn.eq(args.MISSING, null)", True),
        ("fn.eq(fn.parseJSON('{\"a\": [1, 2]}'), fn.parseJSON('{\"a\":[1,2]}'))", True),
        ("fn.eq(args.OBJ, fn.parseJSON('{\"x\": 1}'))", False),
        ("fn.neq(1, 2)", True),
        ("fn.neq(1, 1, 1)", False),
        ("fn.neq(1, 1, 2)", True),
        ("fn.gt(2, 1)", True),
        ("fn.gt('10', 9)", True),  # numeric strings compare as numbers
        ("fn.lt(1, 2)", True),
        ("fn.gte(2, 2)", True),
        ("fn.lte(3, 2)", False),
    ],
)
def test_boolean_functions__compute_as_documented(expression: str, expected: Any) -> None:
    assert ev(expression) == expected
    assert type(ev(expression)) is type(expected)


def test_comparison__rejects_non_numbers() -> None:
    assert "fn.gt: argument 1 must be a number, got string 'a'" in ev_error("fn.gt('a', 1)")
    assert "fn.lt: argument 2 must be a number, got boolean true" in ev_error("fn.lt(1, true)")


# --- maths ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("fn.add(1, 2)", 3),
        ("fn.add(args.N, 1, 0.5)", 4.5),
        ("fn.add(0.1, 0.2)", 0.30000000000000004),
        ("fn.subtract(10, 3, 2)", 5),
        ("fn.multiply(2, 3, 4)", 24),
        ("fn.multiply(1.5, 2)", 3),  # whole results are integers, as JavaScript prints them
        ("fn.divide(6, 3)", 2),
        ("fn.divide(7, 2)", 3.5),
        ("fn.remainder(7, 3)", 1),
        ("fn.remainder(-7, 3)", -1),  # the sign of the dividend, as in JavaScript
        ("fn.remainder(7, -3)", 1),
        ("fn.remainder(5.5, 2)", 1.5),
        ("fn.exp(2, 10)", 1024),
        ("fn.exp(2, -1)", 0.5),
        ("fn.exp(4, 0.5)", 2),
        ("fn.floor(3.7)", 3),
        ("fn.floor(-3.5)", -4),
        ("fn.ceil(3.2)", 4),
        ("fn.ceil('2.5')", 3),
    ],
)
def test_maths_functions__compute_as_documented(expression: str, expected: Any) -> None:
    assert ev(expression) == expected
    assert type(ev(expression)) is type(expected)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("fn.divide(1, 0)", "fn.divide: division by zero"),
        ("fn.remainder(1, 0.0)", "fn.remainder: division by zero"),
        ("fn.add('a', 1)", "fn.add: argument 1 must be a number, got string 'a'"),
        ("fn.add(true, 1)", "fn.add: argument 1 must be a number, got boolean true"),
        ("fn.multiply(args.A, 2)", "fn.multiply: argument 1 must be a number, got array"),
        ("fn.exp(10, 100000)", "fn.exp: the result is too large"),
        ("fn.exp(10.5, 1000)", "fn.exp failed: math range error"),
        ("fn.exp(-8, 0.5)", "fn.exp failed: math domain error"),
    ],
)
def test_maths_functions__fail_with_a_clear_message(expression: str, message: str) -> None:
    assert message in ev_error(expression)


# --- objects ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("fn.get(refs.svc, 'ports.0.dns')", "a.example.com"),
        ("fn.get(refs.svc, 'ports[1].dns')", "b.internal"),
        ("fn.get(refs.svc, fn.split('ports,1,public', ','))", False),
        ("fn.get(refs.svc, 'nope.x')", None),
        ("fn.get(refs.notrun, 'a')", None),
        ("fn.stringifyJSON(args.OBJ)", '{"x":1,"y":[true]}'),
        ("fn.stringifyJSON('a')", '"a"'),
        ("fn.parseJSON('[1, \"a\", null]')", [1, "a", None]),
        ("fn.parseJSON('3')", 3),
        ("fn.entries(args.OBJ)", [["x", 1], ["y", [True]]]),
        ("fn.values(args.OBJ)", [1, [True]]),
        ("fn.keys(args.OBJ)", ["x", "y"]),
        ("fn.keys(args.WORDS)", ["0", "1", "2"]),
    ],
)
def test_object_functions__compute_as_documented(expression: str, expected: Any) -> None:
    assert ev(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("fn.parseJSON('{')", "fn.parseJSON: string '{' is not valid JSON"),
        ("fn.parseJSON('NaN')", "fn.parseJSON: string 'NaN' is not valid JSON"),
        ("fn.get('text', 'a')", "fn.get: argument 1 must be an object or array, got string 'text'"),
        ("fn.keys(3)", "fn.keys: argument 1 must be an object, got number 3"),
    ],
)
def test_object_functions__fail_with_a_clear_message(expression: str, message: str) -> None:
    assert message in ev_error(expression)


# --- arrays -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("fn.find(refs.svc.ports, (port) => fn.not(port.public))", REFS["svc"]["ports"][1]),
        ("fn.find(args.A, x => fn.gt(x, 10))", None),
        ("fn.find(args.A, (x, i) => fn.eq(i, 2))", 3),
        ("fn.some(args.A, x => fn.eq(x, args.PICK))", True),  # predicates see the outer scope
        ("fn.some(args.B, x => fn.eq(x, 1))", False),
        ("fn.every(args.A, x => fn.gt(x, 0))", True),
        ("fn.every(args.A, x => fn.gt(x, 1))", False),
        ("fn.filter(args.A, (x, index) => fn.remainder(index, 2))", [2, 4]),
        ("fn.filter(refs.svc.ports, p => p.public)", [REFS["svc"]["ports"][0]]),
        ("fn.filter(refs.svc.ports, p => p.nope)", []),  # a missing field of an item is null
        ("fn.map(args.WORDS, w => fn.toUpper(w))", ["A", "B", "C"]),
        ("fn.map(args.WORDS, () => 1)", [1, 1, 1]),
        ("fn.map(args.M, row => fn.map(row, v => fn.multiply(v, 2)))", [[2, 4], [6]]),
        ("fn.map(refs.svc.ports, p => p.dns)", ["a.example.com", "b.internal"]),
        ("fn.concat(args.A, args.B)", [1, 2, 3, 4, 5]),
        ("fn.concat(args.B, 'x', args.WORDS)", [5, "x", "a", "b", "c"]),
        ("fn.arrSlice(args.A, 1)", [2, 3, 4]),
        ("fn.arrSlice(args.A, -2, -1)", [3]),
        ("fn.arrSlice(args.A, 1, 3)", [2, 3]),
        ("fn.arrLength(args.A)", 4),
        ("fn.arrLength(fn.filter(args.A, x => fn.gte(x, 3)))", 2),
    ],
)
def test_array_functions__compute_as_documented(expression: str, expected: Any) -> None:
    assert ev(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("fn.map('abc', x => x)", "fn.map: argument 1 must be an array, got string 'abc'"),
        ("fn.filter(args.A, args.B)", "argument 2 of fn.filter must be a function literal"),
        ("fn.arrLength(args.MISSING)", "fn.arrLength: argument 1 must be an array, got null"),
        ("fn.map(args.A, (a, b, c) => a)", "a function literal takes at most two parameters"),
        ("fn.map(args.A, (args) => 1)", "'args' cannot be a parameter name"),
    ],
)
def test_array_functions__fail_with_a_clear_message(expression: str, message: str) -> None:
    assert message in ev_error(expression)


def test_array_functions__do_not_change_their_input() -> None:
    args = {"A": [3, 1, 2]}
    assert ev("fn.concat(args.A, 4)", args=args) == [3, 1, 2, 4]
    assert args == {"A": [3, 1, 2]}


# --- date ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("'YYYY-MM-DD'", "2025-05-14"),
        ("'YYYYMMDD'", "20250514"),
        ("'YY M D'", "25 5 14"),
        ("'HH:mm:ss.SSS'", "22:03:04.567"),
        ("'h:mm a'", "10:03 pm"),
        ("'hh A k'", "10 PM 22"),
        ("'Do MMMM, MMM Mo'", "14th May, May 5th"),
        ("'dddd ddd dd d E'", "Wednesday Wed We 3 3"),
        ("'Q DDD DDDD W WW GGGG'", "2 134 134 20 20 2025"),
        ("'Z ZZ'", "+00:00 +0000"),
        ("'X'", str(int(NOW.timestamp()))),
        ("'x'", str(int(NOW.timestamp()) * 1000 + 567)),
        ("'[Built on] dddd'", "Built on Wednesday"),
        ("'LT'", "10:03 PM"),
        ("'LTS'", "10:03:04 PM"),
        ("'L'", "05/14/2025"),
        ("'l'", "5/14/2025"),
        ("'LL'", "May 14, 2025"),
        ("'LLL'", "May 14, 2025 10:03 PM"),
        ("'LLLL'", "Wednesday, May 14, 2025 10:03 PM"),
        ("'llll'", "Wed, May 14, 2025 10:03 PM"),
        ("'[release]-YYYY.MM.DD'", "release-2025.05.14"),
        ("'release'", "re5/14/2025epm4e"),  # letters are tokens, as in Moment: bracket text
    ],
)
def test_date__formats_moment_tokens(fmt: str, expected: str) -> None:
    assert ev(f"fn.date({fmt})") == expected


def test_date__defaults_to_iso_8601_with_milliseconds() -> None:
    assert ev("fn.date()") == "2025-05-14T22:03:04.567Z"
    assert ev("fn.date(args.MISSING)") == "2025-05-14T22:03:04.567Z"


def test_date__prints_utc_whatever_the_zone_of_now() -> None:
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    scope = Scope(now=plus_two)
    assert resolve("${fn.date('HH:mm Z')}", scope) == "22:03 +00:00"


def test_ordinals__follow_english_rules() -> None:
    days = {
        1: "1st",
        2: "2nd",
        3: "3rd",
        4: "4th",
        11: "11th",
        12: "12th",
        13: "13th",
        21: "21st",
        22: "22nd",
    }
    for day, ordinal in days.items():
        scope = Scope(now=NOW.replace(day=day))
        assert resolve("${fn.date('Do')}", scope) == ordinal


# --- random values and secrets ---------------------------------------------------------------------


def test_random_secret__is_stable_for_the_same_seed_path_and_call() -> None:
    first = ev("fn.randomSecret(32)", secret_seed="flow-1")
    assert ev("fn.randomSecret(32)", secret_seed="flow-1") == first
    assert len(first) == 32
    assert re.fullmatch(r"[A-Za-z0-9+/]{32}", first)


def test_random_secret__differs_by_seed_path_arguments_and_position() -> None:
    base = ev("fn.randomSecret(32)", secret_seed="flow-1")
    assert ev("fn.randomSecret(32)", secret_seed="flow-2") != base
    assert ev("fn.randomSecret(32)", secret_seed="flow-1", path="spec.other") != base
    assert ev("fn.randomSecret(31)", secret_seed="flow-1") != base[:31]
    scope = Scope(now=NOW, secret_seed="flow-1")
    left, right = resolve("${fn.randomSecret(16, 'hex')}-${fn.randomSecret(16, 'hex')}", scope).split("-")
    assert len(left) == len(right) == 16
    assert left != right  # two calls in one field never share a secret


def test_random_secret__defaults_to_base64() -> None:
    assert ev("fn.randomSecret(32, 'base64')", secret_seed="x") == ev("fn.randomSecret(32)", secret_seed="x")


def test_random_secret__hex_uses_lowercase_hex_digits() -> None:
    assert re.fullmatch(r"[0-9a-f]{15}", ev("fn.randomSecret(15, 'hex')"))


def test_random_string__is_alphanumeric_and_stable() -> None:
    value = ev("fn.randomString(64)", secret_seed="s")
    assert re.fullmatch(r"[A-Za-z0-9]{64}", value)
    assert ev("fn.randomString(64)", secret_seed="s") == value
    assert ev("fn.randomString(64)", secret_seed="t") != value


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("fn.randomSecret(0)", "fn.randomSecret: argument 1 must be a length from 1 to 4096, got number 0"),
        ("fn.randomString(4097)", "must be a length from 1 to 4096"),
        ("fn.randomSecret(8, 'base32')", "fn.randomSecret: argument 2 must be 'base64' or 'hex'"),
    ],
)
def test_random_functions__reject_bad_arguments(expression: str, message: str) -> None:
    assert message in ev_error(expression)


def test_fetch_secret__reads_the_scope_secrets() -> None:
    assert ev("fn.fetchSecret('S')") == "s3cr3t"
    assert ev("fn.fetchSecret(fn.toUpper('s'))") == "s3cr3t"
    assert "fn.fetchSecret: secret 'nope' is not defined" in ev_error("fn.fetchSecret('nope')")


# --- shell ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("'plain'", "plain"),
        ("'a b'", "'a b'"),
        ("''", "''"),
        ('"it\'s"', "'it'\"'\"'s'"),
        ("'$(rm -rf /)'", "'$(rm -rf /)'"),
        ("args.N", "3"),
        ("args.WORDS", '\'["a","b","c"]\''),
        ("null", "''"),
    ],
)
def test_shell_quote__one_literal_shell_word(value: str, quoted: str) -> None:
    assert ev(f"fn.shellQuote({value})") == quoted


@pytest.mark.parametrize(("value", "text"), [("'$(date)'", "$(date)"), ("args.N", "3"), ("true", "true")])
def test_shell_raw__the_value_as_text(value: str, text: str) -> None:
    assert ev(f"fn.shellRaw({value})") == text


@pytest.mark.parametrize("name", ["shellQuote", "shellRaw"])
def test_shell_functions__take_exactly_one_argument(name: str) -> None:
    assert f"fn.{name} takes 1 argument, got 2" in ev_error(f"fn.{name}('a', 'b')")

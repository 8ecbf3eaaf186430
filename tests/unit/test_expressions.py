"""The ``${...}`` language: syntax, resolution, the dry run, and the helpers other modules use."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from releaseflow.domain.errors import ExpressionError, Issue
from releaseflow.domain.expressions import (
    MAX_EXPRESSION_LENGTH,
    Call,
    Literal,
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

NOW = datetime(2025, 5, 14, 22, 0, tzinfo=UTC)
SCOPE = Scope(
    args={"TAG": "v1.2", "N": 3, "ON": True, "NOTHING": None, "LIST": [1, "a"], "OBJ": {"k": "v"}, "P": 5},
    refs={
        "svc": {"ports": [{"dns": "svc.example.com"}], "odd.key": "dotted", "status": "running"},
        "build": {"id": "build-7", "branch": "main"},
    },
    secrets={"DB_PASSWORD": "hunter2"},
    now=NOW,
    secret_seed="flow-seed",
)


def one(expression: str, scope: Scope = SCOPE) -> Any:
    return resolve(expression, scope, "spec.x")


def failure(value: Any, scope: Scope = SCOPE, path: str = "") -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        resolve(value, scope, path)
    return caught.value


# --- scope ------------------------------------------------------------------------------------------


def test_scope__requires_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Scope(now=datetime(2025, 1, 1))  # noqa: DTZ001 - the naive value under test


def test_scope__defaults_to_empty_namespaces() -> None:
    scope = Scope(now=NOW)
    assert (dict(scope.args), dict(scope.refs), dict(scope.secrets), scope.secret_seed) == ({}, {}, {}, "")


# --- whole-field values and text ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${args.N}", 3),
        ("${args.ON}", True),
        ("${args.NOTHING}", None),
        ("${args.LIST}", [1, "a"]),
        ("${args.OBJ}", {"k": "v"}),
        ("${args.TAG}", "v1.2"),
        ("${fn.if(fn.eq(refs.build.branch, 'main'), 3, 1)}", 3),
        ("${ args.N }", 3),  # whitespace inside the braces is allowed
    ],
)
def test_resolve__whole_field_expression_yields_the_raw_value(text: str, expected: Any) -> None:
    assert one(text) == expected
    assert type(one(text)) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("image:${args.TAG}", "image:v1.2"),
        ("n=${args.N}", "n=3"),
        ("on=${args.ON}", "on=true"),
        ("none=[${args.NOTHING}]", "none=[]"),
        ("list=${args.LIST}", 'list=[1,"a"]'),
        ("obj=${args.OBJ}", 'obj={"k":"v"}'),
        ("half=${fn.divide(args.N, 2)} whole=${fn.divide(4, 2)}", "half=1.5 whole=2"),
        ("${refs.build.id}/${refs.build.branch}", "build-7/main"),
        (" ${args.N}", " 3"),  # not a whole field: text around it
    ],
)
def test_resolve__expressions_inside_text_are_stringified(text: str, expected: str) -> None:
    assert one(text) == expected


def test_resolve__text_without_expressions_is_returned_as_is() -> None:
    text = "plain $ text { with } braces and $5"
    assert one(text) is text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$${args.TAG}", "${args.TAG}"),
        ("cost: $${args.TAG} and ${args.TAG}", "cost: ${args.TAG} and v1.2"),
        ("$$${args.TAG}", "$${args.TAG}"),
        ("${'$'}${args.P}", "$5"),  # a dollar sign right before an expression
        ("${'${'}", "${"),
        ("a}b{c$", "a}b{c$"),
    ],
)
def test_resolve__dollar_dollar_brace_is_a_literal(text: str, expected: str) -> None:
    assert one(text) == expected


def test_escape__makes_text_resolve_to_itself() -> None:
    text = "literal ${args.TAG} and $${x}"
    assert escape(text) == "literal $${args.TAG} and $$${x}"
    assert one(escape(text)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${refs.svc.ports.0.dns}", "svc.example.com"),
        ("${refs.svc.ports[0].dns}", "svc.example.com"),
        ("${refs.svc['odd.key']}", "dotted"),
        ('${refs.svc["odd.key"]}', "dotted"),
        ("${template.args.TAG}", "v1.2"),
        ("${template.refs.build.id}", "build-7"),
        ("${template.fn.toUpper(args.TAG)}", "V1.2"),
        ("${secrets.DB_PASSWORD}", "hunter2"),
        ("${args.LIST.1}", "a"),
    ],
)
def test_resolve__paths_reach_into_arguments_refs_and_secrets(text: str, expected: str) -> None:
    assert one(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${'it\\'s'}", "it's"),
        ('${"say \\"hi\\""}', 'say "hi"'),
        ("${'a\\nb\\tc'}", "a\nb\tc"),
        ("${'caf\\u00e9'}", "café"),
        ("${'back\\\\slash'}", "back\\slash"),
        ("${'brace } inside'}", "brace } inside"),
        ("${-1}", -1),
        ("${3.5}", 3.5),
        ("${1e3}", 1000.0),
        ("${true}", True),
        ("${null}", None),
    ],
)
def test_resolve__literals(text: str, expected: Any) -> None:
    assert one(text) == expected


def test_resolve__unresolved_values_inside_function_arguments_are_null() -> None:
    assert one("${fn.if(args.DEBUG, 'debug', 'info')}") == "info"
    assert one("${fn.eq(refs.notrun.id, null)}") is True
    assert one("${fn.eq(refs.svc.nope.deeper, null)}") is True
    assert one("${fn.if(secrets.MISSING, 1, 2)}") == 2


# --- resolve errors ---------------------------------------------------------------------------------


def test_resolve__missing_argument_names_path_and_expression() -> None:
    error = failure({"spec": {"target": {"id": "${args.TAG2}"}}})
    assert str(error) == "spec.target.id: argument 'TAG2' is not defined in '${args.TAG2}'"
    assert error.expression == "args.TAG2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${refs.deploy.id}", "reference 'deploy' is not available: no node with that ref has run"),
        ("${refs.svc.ports.3.dns}", "reference 'svc' has no field 'ports.3' in '${refs.svc.ports.3.dns}'"),
        ("${refs.build.id.x}", "reference 'build' has no field 'id.x'"),
        ("${secrets.NOPE}", "secret 'NOPE' is not defined"),
        ("${args.OBJ.missing}", "argument 'OBJ' has no field 'missing'"),
        ("${fn.divide(1, 0)}", "fn.divide: division by zero in '${fn.divide(1, 0)}'"),
        ("x ${fn.parseJSON('{')}", "fn.parseJSON: string '{' is not valid JSON"),
    ],
)
def test_resolve__missing_values_and_function_errors_fail(text: str, message: str) -> None:
    assert message in str(failure({"steps": [{"id": text}]}))
    assert str(failure({"steps": [{"id": text}]})).startswith("steps[0].id: ")


def test_resolve__syntax_errors_fail_at_their_path() -> None:
    assert (
        str(failure(["${args.x"], path="spec")) == "spec[0]: unterminated '${' (no closing '}'): '${args.x'"
    )
    assert "spec.a: unknown namespace 'foo'" in str(failure({"a": "${foo.bar}"}, path="spec"))


def test_resolve__keeps_structure_and_keys_and_leaves_the_input_alone() -> None:
    document = {"${args.TAG}": ["${args.N}", 1, None, {"x": ("${args.ON}",)}], "n": 2.5}
    before = copy.deepcopy(document)
    assert resolve(document, SCOPE) == {"${args.TAG}": [3, 1, None, {"x": [True]}], "n": 2.5}
    assert document == before


def test_resolve__results_do_not_alias_scope_data() -> None:
    scope = Scope(args={"OBJ": {"list": [1]}}, now=NOW)
    resolved = resolve({"a": "${args.OBJ}"}, scope)
    resolved["a"]["list"].append(2)
    assert scope.args["OBJ"] == {"list": [1]}


def test_resolve__random_secret_depends_on_the_field_path() -> None:
    document = {"a": "${fn.randomSecret(24)}", "b": "${fn.randomSecret(24)}"}
    first = resolve(document, SCOPE, "spec")
    assert first == resolve(document, SCOPE, "spec")  # stable across runs
    assert first["a"] != first["b"]  # two fields never share a secret


# --- find, check, referenced -------------------------------------------------------------------------

DOCUMENT = {
    "spec": {
        "steps": [
            {"ref": "build", "spec": {"id": "${args.SERVICE}", "branch": "main"}},
            {
                "spec": {
                    "target": {"id": "svc-${refs.build.id}-${fn.slug(args.NAME)}"},
                    "when": "${fn.some(refs.scan.items, (item) => fn.eq(item.ok, template.args.EXPECTED))}",
                    "odd.key": ["${secrets.TOKEN}"],
                }
            },
        ]
    },
    "count": 3,
}


def test_find_expressions__lists_every_expression_with_its_json_path() -> None:
    assert find_expressions(DOCUMENT) == [
        ("spec.steps[0].spec.id", "args.SERVICE"),
        ("spec.steps[1].spec.target.id", "refs.build.id"),
        ("spec.steps[1].spec.target.id", "fn.slug(args.NAME)"),
        (
            "spec.steps[1].spec.when",
            "fn.some(refs.scan.items, (item) => fn.eq(item.ok, template.args.EXPECTED))",
        ),
        ('spec.steps[1].spec["odd.key"][0]', "secrets.TOKEN"),
    ]


def test_find_expressions__prefixes_the_given_path() -> None:
    assert find_expressions({"id": "${args.A}"}, "spec.spec.steps[2]") == [
        ("spec.spec.steps[2].id", "args.A")
    ]
    assert find_expressions("${args.A}", "spec.id") == [("spec.id", "args.A")]


def test_referenced_refs_and_args__include_function_arguments_and_predicates() -> None:
    assert referenced_refs(DOCUMENT) == {"build", "scan"}
    assert referenced_args(DOCUMENT) == {"SERVICE", "NAME", "EXPECTED"}
    assert referenced_refs({"a": "${fn.map(args.L, (build) => build.id)}"}) == set()


def test_check_syntax__accepts_a_valid_document() -> None:
    assert check_syntax(DOCUMENT) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "${foo.bar}",
            "unknown namespace 'foo' (expected args, refs, fn, secrets or template) in '${foo.bar}'",
        ),
        ("${template.foo.x}", "unknown namespace 'template.foo'"),
        ("${fn.toUpperCase(args.X)}", "unknown function 'fn.toUpperCase' (did you mean fn.toUpper?)"),
        ("${fn.eq(args.A)}", "fn.eq takes at least 2 arguments, got 1 in '${fn.eq(args.A)}'"),
        ("${fn.if(args.A)}", "fn.if takes 2 to 3 arguments, got 1"),
        ("x ${args.A", "unterminated '${' (no closing '}'): '${args.A'"),
        ("${fn.toUpper}", "fn.toUpper must be called: fn.toUpper(...)"),
        ("${args.X(1)}", "only functions can be called"),
        ("${args}", "'args' must be followed by a name, e.g. args.NAME"),
        ("${args.A b}", "expected '}' to end the expression, found 'b'"),
        ("${fn.eq(1 2)}", "expected ',' or ')' in the arguments of fn.eq, found '2'"),
        ("${fn.eq(1, (x) => x)}", "a function literal can only be the predicate of fn.find"),
        ("${fn.filter(args.L, args.P)}", "argument 2 of fn.filter must be a function literal"),
        ("${fn.eq(/a/, 'a')}", "a regular expression can only be the pattern of fn.search"),
        ("${fn.search('a', /(/)}", "invalid regular expression /(/"),
        ("${fn.search('a', /a/x)}", "unknown regular expression flags 'x'"),
        ("${'abc}", "unterminated '${'"),
        ("${'a\\q'}", "unknown escape '\\q' in a string"),
        ("${12abc}", "invalid number '12a'"),
        ("${1e999}", "the number 1e999 is out of range"),
        ("${x => x}", "a function literal is not a value"),
        ("${}", "expected a value, found '}'"),
    ],
)
def test_check_syntax__reports_one_issue_per_bad_expression(text: str, message: str) -> None:
    issues = check_syntax({"spec": {"id": text, "ok": "${args.A}"}})
    assert len(issues) == 1
    assert issues[0].path == "spec.id"
    assert message in issues[0].message


def test_check_syntax__finds_every_problem_in_one_pass() -> None:
    issues = check_syntax(["${fn.nope()} and ${args.}", "${refs.a.b}", "${args.A"], "spec")
    assert [issue.path for issue in issues] == ["spec[0]", "spec[0]", "spec[2]"]


def test_check_syntax__limits_expression_length() -> None:
    long_text = "${fn.concat(" + ", ".join(["1"] * 4000) + ")}"
    assert len(long_text) > MAX_EXPRESSION_LENGTH
    [issue] = check_syntax({"a": long_text})
    assert f"longer than {MAX_EXPRESSION_LENGTH} characters" in issue.message


def test_check_syntax__limits_nesting_without_recursion_errors() -> None:
    deep = "${" + "fn.not(" * 500 + "true" + ")" * 500 + "}"
    [issue] = check_syntax({"a": deep})
    assert "nests deeper than 64 levels" in issue.message
    assert "nests deeper" in str(failure({"a": deep}))


def test_resolve__deeply_nested_documents_fail_cleanly() -> None:
    document: Any = "${args.TAG}"
    for _ in range(400):
        document = [document]
    assert "nested deeper than 256 levels" in str(failure(document))
    assert "nested deeper" in check_syntax(document)[0].message


# --- the dry run ------------------------------------------------------------------------------------


def test_resolve_partially__leaves_strings_that_need_absent_refs_untouched() -> None:
    document = {
        "id": "${refs.deploy.id}-${args.TAG}",
        "tag": "${args.TAG}",
        "build": "${refs.build.id}",
        "skip": "${fn.eq(refs.deploy.status, 'running')}",
    }
    resolved, issues = resolve_partially(document, SCOPE)
    assert resolved == {
        "id": "${refs.deploy.id}-${args.TAG}",
        "tag": "v1.2",
        "build": "build-7",
        "skip": "${fn.eq(refs.deploy.status, 'running')}",
    }
    assert issues == []


def test_resolve_partially__reports_every_failure_and_keeps_going() -> None:
    document = {
        "a": "${refs.deploy.id}-${args.MISSING}",  # deferred, but the missing argument is still reported
        "b": "${fn.divide(1, 0)}",
        "c": "${refs.build.nope}",
        "d": "${fn.nope()}",
        "e": "${args.N}",
    }
    resolved, issues = resolve_partially(document, SCOPE, "spec")
    assert issues == [
        Issue("spec.a", "argument 'MISSING' is not defined in '${args.MISSING}'"),
        Issue("spec.b", "fn.divide: division by zero in '${fn.divide(1, 0)}'"),
        Issue("spec.c", "reference 'build' has no field 'nope' in '${refs.build.nope}'"),
        Issue("spec.d", "unknown function 'fn.nope' in '${fn.nope()}'"),
    ]
    assert resolved == {**document, "e": 3}


def test_resolve_partially__matches_resolve_once_every_ref_is_there() -> None:
    document = {"a": ["${refs.build.id}", "x${args.N}"], "b": "${fn.randomString(8)}"}
    assert resolve_partially(document, SCOPE, "spec") == (resolve(document, SCOPE, "spec"), [])


# --- truthiness, trees, caching ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        ("TRUE", True),
        (" True ", True),
        (False, False),
        ("false", False),
        ("", False),
        ("yes", False),
        (1, False),
        (None, False),
        ("${fn.eq(1, 1)}", False),  # unresolved text never skips a node
        ([True], False),
    ],
)
def test_is_truthy__only_true_and_the_string_true_count(value: Any, expected: bool) -> None:
    assert is_truthy(value) is expected


def test_is_truthy__accepts_a_resolved_skip_condition() -> None:
    scope = Scope(args={"ENVIRONMENT": "DEVELOPMENT"}, now=NOW)
    assert is_truthy(resolve("${fn.eq(args.ENVIRONMENT, 'DEVELOPMENT')}", scope))
    assert not is_truthy(resolve("${fn.eq(args.ENVIRONMENT, 'PRODUCTION')}", scope))


def test_parse_expression__builds_the_tree() -> None:
    assert parse_expression("template.args.X") == Path("args", "X")
    assert parse_expression("fn.add(refs.a.b[0], -2)") == Call(
        "add", (Path("refs", "a", ("b", "0")), Literal(-2))
    )
    with pytest.raises(ExpressionError, match="unknown namespace"):
        parse_expression("nope.x")


def test_format_expression__writes_the_canonical_text() -> None:
    text = "fn.if( fn.eq(template.args.branch,\"main\"),3,refs.svc['odd.key'] )"
    assert (
        format_expression(parse_expression(text))
        == "fn.if(fn.eq(args.branch, 'main'), 3, refs.svc['odd.key'])"
    )
    lam = "fn.filter(args.L, (x, i) => fn.gt(i, 0))"
    assert format_expression(parse_expression(lam)) == lam


def test_parse_string__is_cached() -> None:
    text = "${fn.toUpper(args.TAG)}-cached"
    parse_string(text)
    hits = parse_string.cache_info().hits
    assert one(text) == "V1.2-cached"
    assert parse_string.cache_info().hits == hits + 1


def test_resolve__northflank_functions_example() -> None:
    """The "Functions example" of Northflank's make-a-template-dynamic page."""
    document = {
        "billing": {
            "deploymentPlan": "${fn.if(fn.eq(args.branch, 'main'), 'nf-compute-100', 'nf-compute-50')}"
        },
        "deployment": {"instances": "${fn.if(fn.eq(args.branch, 'main'), 3, 1)}"},
        "runtimeEnvironment": {
            "ENVIRONMENT": "${fn.if(fn.eq(args.branch, 'main'), 'production', 'development')}"
        },
        "name": "${args.branch}-deployment",
    }
    feature = resolve(document, Scope(args={"branch": "feature"}, now=NOW))
    assert feature == {
        "billing": {"deploymentPlan": "nf-compute-50"},
        "deployment": {"instances": 1},
        "runtimeEnvironment": {"ENVIRONMENT": "development"},
        "name": "feature-deployment",
    }
    assert resolve(document, Scope(args={"branch": "main"}, now=NOW))["deployment"]["instances"] == 3

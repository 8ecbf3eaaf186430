"""Properties: whatever the input, loading and parsing either succeed or raise ``ValidationError``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releaseflow.domain.documents import load_document
from releaseflow.domain.errors import ValidationError
from releaseflow.domain.overrides import apply_run_overrides
from releaseflow.domain.schema import release_flow_json_schema
from releaseflow.domain.template_parser import parse_template
from releaseflow.domain.template_rules import StageScope, check_refs, check_template

NORTHFLANK = Path(__file__).resolve().parent.parent / "fixtures" / "northflank"
EXAMPLES = [json.loads(path.read_text()) for path in sorted(NORTHFLANK.glob("*.json"))]
EXAMPLE_STEPS = [step for example in EXAMPLES for step in example["spec"]["spec"]["steps"]]
SCOPE = StageScope(
    stage="Production",
    services=frozenset({"deployment-prod"}),
    jobs=frozenset({"job-prod"}),
    addons=frozenset(),
    build_services=frozenset({"builder"}),
    previous_stage="Staging",
)
SCHEMA = jsonschema.Draft202012Validator(release_flow_json_schema())
KEYS = [
    "kind",
    "spec",
    "ref",
    "type",
    "steps",
    "origin",
    "target",
    "id",
    "condition",
    "timeoutDuration",
    "skipNodeExecution",
    "settings",
    "maxAttempts",
    "backoff",
    "data",
    "apiVersion",
    "jobId",
    "x",
]
WORDS = [
    "Workflow",
    "Release",
    "Build",
    "JobRun",
    "Action",
    "Condition",
    "Message",
    "Approval",
    "LoopWorkflow",
    "sequential",
    "parallel",
    "build",
    "deployment",
    "registry",
    "service",
    "job",
    "success",
    "running",
    "v1.2",
    "${refs.a.id}",
    "${refs.",
    "${args.X}",
    "${fn.nope(}",
    "true",
    "",
    "a",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(WORDS)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=40,
)


def _accepts_or_refuses(document: Any) -> None:
    try:
        template = parse_template(document)
    except ValidationError as error:
        assert error.issues, "a ValidationError must name at least one issue"
        return
    # A template that parses can be checked in context without raising.
    check_refs(template)
    check_template(template, SCOPE)


@given(json_values)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_parse_template__random_documents_only_raise_validation_error(document: Any) -> None:
    _accepts_or_refuses(document)
    _accepts_or_refuses({"apiVersion": "v1.2", "spec": document})


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*prefix, index)))
    return found


@st.composite
def mutated_examples(draw: st.DrawFn) -> Any:
    """A Northflank example with 1-4 random edits (replace, delete or add a value anywhere)."""
    # Edits apply to copies only: strategies must not change shared state between examples.
    document = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(document)))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        value = copy.deepcopy(draw(json_values | st.sampled_from(EXAMPLE_STEPS)))
        if not path:
            document = value
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        if action == "replace":
            parent[last] = value
        elif action == "delete":
            del parent[last]
        elif isinstance(parent[last], dict):
            parent[last][draw(st.sampled_from(KEYS))] = value
        elif isinstance(parent[last], list):
            parent[last].append(value)
    return document


@given(mutated_examples())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_parse_template__mutated_examples_only_raise_validation_error(document: Any) -> None:
    _accepts_or_refuses(document)


@given(mutated_examples())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_schema__agrees_with_parser_on_mutated_examples(document: Any) -> None:
    try:
        parse_template(document)
    except ValidationError:
        return
    # Whatever the parser accepts, the published schema accepts too.
    SCHEMA.validate(document)


@given(st.text(max_size=200) | st.binary(max_size=200))
@settings(max_examples=400)
def test_load_document__random_text_only_raises_validation_error(text: str | bytes) -> None:
    try:
        load_document(text)
    except ValidationError as error:
        assert error.issues


@given(json_values)
@settings(max_examples=200)
def test_load_document__round_trips_json(value: Any) -> None:
    text = json.dumps(value)
    if "\\u0000" in text:  # a NUL is refused wherever it is (see test_documents)
        with pytest.raises(ValidationError):
            load_document(text)
        return
    assert load_document(text) == value if isinstance(value, dict | list) else True


@given(mutated_examples(), json_values, json_values)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_apply_run_overrides__only_raises_validation_error(
    document: Any, overrides: Any, release: Any
) -> None:
    if not isinstance(document, dict):
        return
    try:
        apply_run_overrides(document, overrides, release)
    except ValidationError as error:
        assert error.issues

"""The published JSON Schema (``releaseflow.domain.schema``) agrees with the parser."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from tests.unit.test_template_parser import BAD, EXAMPLES

from releaseflow.domain.errors import ValidationError
from releaseflow.domain.schema import release_flow_json_schema
from releaseflow.domain.template import SUPPORTED_NODE_KINDS
from releaseflow.domain.template_parser import parse_template

VALIDATOR = jsonschema.Draft202012Validator(release_flow_json_schema())


def test_release_flow_json_schema__is_a_valid_2020_12_schema() -> None:
    schema = release_flow_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://releaseflow.dev/schemas/release-flow"
    assert "https://api.northflank.com/v1/schemas/release-flow" in schema["description"]


def test_release_flow_json_schema__lists_the_supported_kinds() -> None:
    assert release_flow_json_schema()["$defs"]["node"]["properties"]["kind"]["enum"] == list(
        SUPPORTED_NODE_KINDS
    )


def test_release_flow_json_schema__is_a_fresh_copy() -> None:
    release_flow_json_schema()["$defs"].clear()
    assert release_flow_json_schema()["$defs"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_release_flow_json_schema__accepts_northflank_example(path: Path) -> None:
    VALIDATOR.validate(json.loads(path.read_text()))


def test_release_flow_json_schema__accepts_expressions_where_the_parser_does() -> None:
    document = {
        "apiVersion": "v1.2",
        "$schema": "https://api.northflank.com/v1/schemas/release-flow",
        "spec": {
            "kind": "Workflow",
            "spec": {
                "type": "sequential",
                "steps": [
                    {
                        "kind": "Approval",
                        "spec": {"amount": "${args.N}"},
                        "skipNodeExecution": "${args.SKIP}",
                    },
                    {
                        "kind": "JobRun",
                        "spec": {"jobId": "j", "runtimeEnvironment": "${refs.x.env}"},
                        "timeoutDuration": "${args.T}",
                    },
                    {
                        "kind": "Build",
                        "spec": {"id": "b", "type": "service", "sha": "${refs.app.sha}"},
                        "settings": {"maxAttempts": "${args.A}"},
                    },
                ],
            },
        },
    }
    parse_template(copy.deepcopy(document))
    VALIDATOR.validate(document)


# Cases the schema cannot express: refs must be unique across the whole document.
_SCHEMA_BLIND = {"duplicate ref", "ref used by a trigger"}


@pytest.mark.parametrize(
    ("document"),
    [case[1] for case in BAD if case[0] not in _SCHEMA_BLIND],
    ids=[case[0] for case in BAD if case[0] not in _SCHEMA_BLIND],
)
def test_release_flow_json_schema__refuses_what_the_parser_refuses(document: Any) -> None:
    with pytest.raises(ValidationError):
        parse_template(document)
    assert not VALIDATOR.is_valid(document)


def test_release_flow_json_schema__root_must_be_a_workflow() -> None:
    document = {"apiVersion": "v1.2", "spec": {"kind": "Approval", "spec": {"amount": 1}}}
    assert not VALIDATOR.is_valid(document)

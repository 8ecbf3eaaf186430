"""A fuzz run of the API's OpenAPI document (schemathesis) against a real ``releaseflow serve``.

Every operation the served ``/openapi.json`` lists, whoever added it, is sent two sets of requests
made from its schema, with an admin token of every project:

* boundary cases (schemathesis's coverage phase), one of each kind per parameter and body: values at
  and beyond its bounds, of a wrong type, missing or null, unexpected fields, a malformed content
  type, an undeclared method. They are the same on every run;
* ``EXAMPLES`` random ones from a fixed seed: valid and invalid ones, and valid ones at generated ids.

Both use the ids of a real project, pipeline, stage and run (so that requests reach the handlers,
not only the 404 of an unknown id), except where an id is what a case is about. What must hold:

* no answer is a 5xx, and every answer comes whole within ``HANG_SECONDS`` (no hang, no connection
  dropped mid-answer);
* its status, media type and body are those the document declares (every refusal a 4xx in the one
  error envelope).

No shrinking (a failure names the request that failed, with a curl command); event streams are asked
to last one second. Nothing is excluded: the fuzz token's id is never generated, so it cannot revoke
itself, and a generated configuration document never passes validation, so ``apply`` with ``prune``
changes nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.acceptance.api_support import Api, served_api
from tests.acceptance.config import INBOX_KEY, PROJECT
from tests.acceptance.support import Releaseflow

pytestmark = pytest.mark.slow

# Random requests per operation, besides its boundary cases (~7 each): the whole test stays under a
# minute on a busy 2-core machine (the random ones cost the most: large, odd bodies).
EXAMPLES = 4
SEED = 20260209
# Longer than any answer takes; an answer that takes longer is a hang.
HANG_SECONDS = 10.0
# Event streams end after ``lifetime`` seconds (the route's own bound): asked for the shortest.
STREAM_QUERY = {"lifetime": 1}
STREAM_MEDIA_TYPE = "text/event-stream"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api(releaseflow: Releaseflow) -> Api:
    """A served installation with tokens and a finished run, on the default database (SQLite): the
    run fits the time budget once, not per database. What only PostgreSQL refuses (a NUL character in
    text) is tested on both databases in tests/integration/test_unstorable_values.py."""
    return served_api(releaseflow)


@dataclass
class Findings:
    """What the fuzz run saw: the first failure of each operation, and the statuses answered."""

    failures: dict[str, str] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)

    def fail(self, label: str, what: str) -> None:
        self.failures.setdefault(label, what)


def real_ids(api: Api) -> dict[str, str]:
    """Path parameters by name: what exists in the installation ``served_api`` set up."""
    return {
        "projectId": PROJECT,
        "teamId": "any-team",  # accepted and ignored (releaseflow has no teams)
        "pipelineId": "main",
        "stage": "development",
        "runId": api.run_id,
        "otherRunId": api.run_id,
        "key": INBOX_KEY,
    }


def is_stream(operation: schemathesis.APIOperation) -> bool:
    answers = operation.definition.raw.get("responses", {})
    return any(STREAM_MEDIA_TYPE in answer.get("content", {}) for answer in answers.values())


def boundary_cases(
    schema: schemathesis.BaseSchema, operation: schemathesis.APIOperation, ids: dict[str, str]
) -> list[schemathesis.Case]:
    """Schemathesis's coverage cases, one of each kind per parameter: at and beyond its bounds, of a
    wrong type, missing, null; bodies with fields missing or unexpected; a malformed content type; an
    undeclared method. No randomness: the same list on every run. Each is sent at the real ids, except
    the path parameter it is about."""
    found = schema.iter_coverage_cases(
        operation,
        generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        generation_config=schema.config.generation_for(operation=operation),
    )
    chosen: dict[tuple[str, str | None, str | None], schemathesis.Case] = {}
    for case in found:
        data = case.meta.phase.data if case.meta else None
        about = getattr(data, "parameter", None)
        kind = (str(getattr(data, "scenario", "")), about, str(getattr(data, "parameter_location", "")))
        if kind in chosen:
            continue
        for name in case.path_parameters or {}:
            if name in ids and name != about:
                case.path_parameters[name] = ids[name]
        if is_stream(operation) and (about != "lifetime" or case.meta.generation.mode.is_positive):
            case.query = {**(case.query or {}), **STREAM_QUERY}
        chosen[kind] = case
    return list(chosen.values())


def random_cases(operation: schemathesis.APIOperation, ids: dict[str, str]) -> st.SearchStrategy[Any]:
    """Requests drawn at random: valid and invalid ones at real ids, and valid ones at any ids."""
    known = {name: ids[name] for name in (p.name for p in operation.path_parameters) if name in ids}
    query = STREAM_QUERY if is_stream(operation) else None
    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known, query=query),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=known, query=query),
        operation.as_strategy(GenerationMode.POSITIVE, query=query),
    )


class Fuzzer:
    """Sends cases to the server and keeps what it finds."""

    def __init__(self, api: Api) -> None:
        self.url = api.url
        self.session = requests.Session()  # one connection kept open: most of a request's cost otherwise
        self.session.headers["Authorization"] = f"Bearer {api.tokens['root']}"
        self.findings = Findings()

    def send(self, case: schemathesis.Case) -> None:
        label = case.operation.label
        started = time.monotonic()
        try:
            response = case.call(base_url=self.url, session=self.session, timeout=HANG_SECONDS)
        except requests.RequestException as error:
            self.findings.fail(
                label, f"no complete answer ({type(error).__name__}: {error})\n{case.as_curl_command()}"
            )
            return
        took = time.monotonic() - started
        self.findings.statuses[f"{response.status_code // 100}xx"] += 1
        if took > HANG_SECONDS:
            self.findings.fail(label, f"answered after {took:.1f}s\n{case.as_curl_command()}")
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as failure:
            self.findings.fail(label, str(failure))

    def fuzz(self, operation: schemathesis.APIOperation, ids: dict[str, str]) -> None:
        @seed(SEED)
        @settings(
            max_examples=EXAMPLES,
            database=None,
            deadline=None,  # a slow answer is measured against HANG_SECONDS, not Hypothesis's deadline
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the failing request is reported as sent
            suppress_health_check=list(HealthCheck),
        )
        @given(case=random_cases(operation, ids))
        def send(case: schemathesis.Case) -> None:
            self.send(case)

        send()


def test_fuzz__every_operation_answers_4xx_or_success_in_time_as_documented(api: Api) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    fuzzer = Fuzzer(api)
    ids = real_ids(api)
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for case in boundary_cases(schema, operation, ids):
            fuzzer.send(case)
        fuzzer.fuzz(operation, ids)
    findings = fuzzer.findings
    sent = sum(findings.statuses.values())
    print(
        f"fuzzed {len(operations)} operations with {sent} requests in {time.monotonic() - started:.1f}s:"
        f" {dict(sorted(findings.statuses.items()))}"
    )
    assert len(operations) > 50 and sent > len(operations) * EXAMPLES
    errors = [
        line for line in api.releaseflow.logs().splitlines() if "Error" in line and "WARNING" not in line
    ]
    assert not findings.failures, "\n\n".join(
        [*(f"== {label}\n{what}" for label, what in findings.failures.items()), "server log:", *errors[-20:]]
    )

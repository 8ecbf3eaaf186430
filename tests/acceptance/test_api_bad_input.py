"""Bad requests to a real ``releaseflow serve``: each gets the right 4xx in the error envelope with a
message naming what is wrong, never a 500."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from tests.acceptance.api_support import FLOW, Api, served_api
from tests.acceptance.config import PROJECT
from tests.acceptance.support import Releaseflow

from releaseflow.api.limits import MAX_BODY_BYTES

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def api(releaseflow: Releaseflow) -> Api:
    return served_api(releaseflow)


def refusal(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, f"{answer.status_code} {answer.text[:300]}"
    error = answer.json()["error"]
    assert error["status"] == status
    message: str = error["message"]
    return message


def test_bodies__oversize_malformed_and_wrong_types(api: Api) -> None:
    runs = f"{FLOW}/runs"
    huge = json.dumps({"arguments": {"blob": "x" * MAX_BODY_BYTES}})

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536

    assert "larger than" in refusal(api.call("POST", runs, content=huge), 413)
    assert "larger than" in refusal(api.call("POST", runs, content=chunks()), 413)
    assert "not valid JSON" in refusal(api.call("POST", runs, content=b'{"name": ', headers=JSON), 400)
    assert "name" in refusal(api.call("POST", runs, json={"name": 5}), 400)
    assert "arguments" in refusal(api.call("POST", runs, json={"arguments": "who=me"}), 400)
    assert "nmae" in refusal(api.call("POST", runs, json={"nmae": "typo"}), 400)
    assert "body: Input should be a valid dictionary" in refusal(api.call("POST", runs, json=42), 400)
    deep = b"[" * 100_000 + b"]" * 100_000
    assert "cannot be read as JSON" in refusal(api.call("POST", runs, content=deep, headers=JSON), 400)
    assert "not valid JSON" in refusal(api.call("POST", runs, content=b"\xff\xfe", headers=JSON), 400)
    assert "a JSON body is required" in refusal(api.call("POST", FLOW, content=b"", headers=JSON), 400)
    assert "name" in refusal(api.call("POST", runs, json={"name": "x" * 60}), 400)
    invalid = api.call("POST", FLOW, json={"apiVersion": "v1.2", "spec": {"kind": "Workflow"}})
    assert "invalid" in refusal(invalid, 400) and invalid.json()["error"]["details"]
    assert "valid dictionary" in refusal(api.call("POST", FLOW, json=[1, 2]), 400)


def test_unknown_ids__404_naming_them(api: Api) -> None:
    assert "no project 'nope'" in refusal(api.call("GET", "/v1/projects/nope/pipelines", "root"), 404)
    assert "no pipeline 'nope'" in refusal(api.call("GET", f"/v1/projects/{PROJECT}/pipelines/nope"), 404)
    stage = f"/v1/projects/{PROJECT}/pipelines/main/release-flows/qa"
    assert "no stage 'qa'" in refusal(api.call("GET", stage), 404)
    assert "no run 'r1'" in refusal(api.call("GET", f"{FLOW}/runs/r1"), 404)
    assert "no run 'r1'" in refusal(api.call("POST", f"{FLOW}/runs/r1/abort"), 404)
    other_stage = f"/v1/projects/{PROJECT}/pipelines/main/release-flows/staging/runs/{api.run_id}"
    assert "no run" in refusal(api.call("GET", other_stage), 404)
    assert "/v1" in refusal(api.call("GET", "/v2/anything"), 404)
    assert "not allowed" in refusal(api.call("DELETE", f"{FLOW}/runs"), 405)
    assert "no inbox 'never'" in refusal(api.call("DELETE", "/inbox/never"), 404)


def test_query_values__checked_and_accepted_unencoded(api: Api) -> None:
    runs = f"{FLOW}/runs"
    assert "per_page" in refusal(api.call("GET", runs, params={"per_page": 0}), 400)
    assert "per_page" in refusal(api.call("GET", runs, params={"per_page": 1000}), 400)
    assert "page" in refusal(api.call("GET", runs, params={"page": "two"}), 400)
    assert "cursor 'zz'" in refusal(api.call("GET", runs, params={"cursor": "zz"}), 400)
    assert "cursor '9999" in refusal(api.call("GET", runs, params={"cursor": "9" * 30}), 400)
    assert "cursor '²'" in refusal(api.call("GET", runs, params={"cursor": "²"}), 400)
    assert "failure" in refusal(api.call("GET", runs, params={"status": "bogus"}), 400)
    # Northflank's JS client does not URL-encode query values: a raw request line must work.
    raw = api.call("GET", runs + "?per_page=1&status=success&concluded=true")
    assert raw.status_code == 200 and raw.json()["pagination"] == {"hasNextPage": False, "count": 1}


def test_abort__with_no_body_or_an_empty_json_one(api: Api) -> None:
    production = f"/v1/projects/{PROJECT}/pipelines/main/release-flows/PRODUCTION/runs"
    first = api.call("POST", production, "deployer").json()["data"]["id"]
    second = api.call("POST", production, "deployer").json()["data"]["id"]

    bare = api.call("POST", f"{production}/{first}/abort", "deployer")
    empty = api.call(
        "POST",
        f"{production}/{second}/abort",
        "deployer",
        content=b"",
        headers={"Content-Type": "application/json"},
    )

    assert bare.status_code == 200 and bare.json()["data"]["status"] in ("aborting", "aborted")
    assert empty.status_code == 200 and empty.json()["data"]["id"] == second


def test_root__leads_to_the_web_interface_and_the_api_documentation_stays(api: Api) -> None:
    answer = api.call("GET", "/", None, follow_redirects=False)
    assert answer.status_code in (302, 307) and answer.headers["location"] == "/web/"
    assert api.call("GET", "/docs", None).status_code == 200
    assert api.call("GET", "/openapi.json", None).json()["info"]["title"] == "releaseflow"


@pytest.fixture
def api_on_postgresql(releaseflow: Releaseflow, fresh_postgres_database: Callable[[], str]) -> Api:
    releaseflow.extra_env["RELEASEFLOW_DATABASE_URL"] = fresh_postgres_database()
    return served_api(releaseflow)


def test_values_no_database_holds__400_naming_what_is_wrong(api_on_postgresql: Api) -> None:
    """PostgreSQL holds no NUL character in text, SQLite no integer beyond 64 bits (the path's bound)."""
    api = api_on_postgresql
    stage = f"/api/projects/{PROJECT}/pipelines/main/stages/development"
    assert "NUL character" in refusal(api.call("PUT", f"{stage}/pin", json={"reason": "on\x00hold"}), 400)
    assert "NUL character" in refusal(api.call("GET", f"/api/projects/{PROJECT}/runs/ab%00cd"), 400)
    assert "NUL character" in refusal(api.call("GET", "/api/projects/acme/pipelines/ma%00in"), 400)
    beyond = str(2**63)
    assert "less than or equal to" in refusal(api.call("GET", f"{stage}/versions/{beyond}"), 400)
    assert "other" in refusal(api.call("GET", f"{stage}/versions/1/diff/{beyond}"), 400)
    assert "after" in refusal(api.call("GET", f"{stage}/events", params={"after": beyond}), 400)
    # The server kept serving: the refused values went nowhere.
    assert api.call("GET", f"{stage}/pin").json()["data"]["pin"] is None

"""Every route of the app against a real ``releaseflow serve``: no token, an expired and a revoked
token are refused (401); each role gets exactly the routes its table entry allows (403 below it).

The routes come from the app itself (``app.routes``), so a new route is walked at once, and one
missing from ``REQUIRED`` fails the test: whoever adds a route decides here who may call it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import httpx
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route
from tests.acceptance.api_support import ROLES, Api
from tests.acceptance.config import INBOX_KEY, PROJECT
from tests.acceptance.support import Releaseflow

from releaseflow.api.app import create_app
from releaseflow.settings import Settings

PUBLIC = None
# Authenticated by their own secret (a webhook URL's token, a GitHub signature, a GitLab token), never
# by an API token: without that secret even an admin token is refused.
OWN_SECRET = "own secret"
_NF = "/projects/{projectId}/pipelines"
_FLOW = _NF + "/{pipelineId}/release-flows/{stage}"
# (method, path) -> the least role that may call it (PUBLIC: no token needed).
REQUIRED: dict[tuple[str, str], str | None] = {
    ("GET", "/"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/docs/assets/{name}"): PUBLIC,
    ("GET", "/inbox"): "viewer",
    ("GET", "/inbox/{name}"): "viewer",
    ("POST", "/inbox/{name}"): "viewer",
    ("POST", "/inbox/{key}/{name}"): PUBLIC,  # the key in the path instead (Message nodes send no token)
    ("DELETE", "/inbox/{name}"): "deployer",
    ("GET", "/hooks/release-flows/{token}"): OWN_SECRET,
    ("POST", "/hooks/release-flows/{token}"): OWN_SECRET,
    ("POST", "/hooks/github"): OWN_SECRET,
    ("POST", "/hooks/gitlab"): OWN_SECRET,
}
for _prefix in ("/v1", "/v1/teams/{teamId}"):
    REQUIRED.update(
        {
            ("GET", f"{_prefix}/login"): "viewer",
            ("GET", f"{_prefix}{_NF}"): "viewer",
            ("GET", f"{_prefix}{_NF}/{{pipelineId}}"): "viewer",
            ("GET", f"{_prefix}{_FLOW}"): "viewer",
            ("POST", f"{_prefix}{_FLOW}"): "admin",
            ("POST", f"{_prefix}{_FLOW}/runs"): "deployer",
            ("GET", f"{_prefix}{_FLOW}/runs"): "viewer",
            ("GET", f"{_prefix}{_FLOW}/runs/{{runId}}"): "viewer",
            ("POST", f"{_prefix}{_FLOW}/runs/{{runId}}/abort"): "deployer",
        }
    )

_STAGE = "/api/projects/{projectId}/pipelines/{pipelineId}/stages/{stage}"
_RUN = "/api/projects/{projectId}/runs/{runId}"
_TOKENS = "/api/projects/{projectId}/tokens"
_RECORDS = "/api/projects/{projectId}/records"
_NOTIFICATIONS = "/api/projects/{projectId}/notifications"
REQUIRED.update(
    {
        ("GET", f"{_STAGE}/runs"): "viewer",
        ("GET", _RUN): "viewer",
        ("PATCH", _RUN): "deployer",
        ("POST", f"{_RUN}/abort"): "deployer",
        ("POST", f"{_RUN}/resume"): "deployer",
        ("POST", f"{_RUN}/approvals/{{node}}/{{decision}}"): "deployer",
        ("GET", f"{_RUN}/plan"): "viewer",
        ("GET", f"{_RUN}/diff/{{otherRunId}}"): "viewer",
        ("GET", f"{_RUN}/rollback"): "viewer",
        ("POST", f"{_RUN}/rollback"): "deployer",
        ("GET", f"{_RUN}/rollbacks"): "viewer",
        ("GET", f"{_RUN}/events"): "viewer",
        ("GET", "/api/projects/{projectId}/pipelines/{pipelineId}/state"): "viewer",
        ("GET", f"{_STAGE}/state"): "viewer",
        ("GET", "/api/projects/{projectId}/pipelines/{pipelineId}/side-by-side"): "viewer",
        ("GET", "/api/projects/{projectId}/pipelines"): "viewer",
        ("GET", "/api/projects/{projectId}/pipelines/{pipelineId}"): "viewer",
        ("GET", f"{_STAGE}/timeline"): "viewer",
        ("GET", f"{_STAGE}/metrics"): "viewer",
        ("GET", f"{_STAGE}/pin"): "viewer",
        ("PUT", f"{_STAGE}/pin"): "deployer",
        ("DELETE", f"{_STAGE}/pin"): "deployer",
        ("GET", f"{_STAGE}/versions"): "viewer",
        ("GET", f"{_STAGE}/versions/{{version}}"): "viewer",
        ("GET", f"{_STAGE}/versions/{{version}}/diff/{{other}}"): "viewer",
        ("POST", f"{_STAGE}/versions/{{version}}/restore"): "admin",
        ("POST", f"{_STAGE}/restore-backup"): "deployer",
        ("GET", f"{_STAGE}/trigger-log"): "admin",
        ("POST", f"{_STAGE}/webhook/rotate"): "admin",
        ("GET", f"{_STAGE}/events"): "viewer",
        ("POST", "/api/projects/{projectId}/configuration/validate"): "admin",
        ("POST", "/api/projects/{projectId}/configuration/apply"): "admin",
        ("GET", "/api/token"): "viewer",
        ("GET", "/api/approvals"): "viewer",
        ("POST", f"{_STAGE}/plan"): "viewer",
        ("POST", f"{_STAGE}/runs"): "deployer",
        ("GET", _TOKENS): "admin",
        ("POST", _TOKENS): "admin",
        ("DELETE", f"{_TOKENS}/{{tokenId}}"): "admin",
        ("GET", "/api/projects"): "viewer",
        ("GET", "/api/projects/{projectId}"): "viewer",
        ("GET", f"{_RECORDS}"): "viewer",
        ("GET", f"{_RECORDS}/{{recordId}}"): "viewer",
        ("GET", f"{_RECORDS}/{{recordId}}/log"): "viewer",
        ("GET", f"{_RECORDS}/{{recordId}}/log/lines"): "viewer",
        ("GET", f"{_NOTIFICATIONS}/subscriptions"): "viewer",
        ("POST", f"{_NOTIFICATIONS}/subscriptions"): "admin",
        ("DELETE", f"{_NOTIFICATIONS}/subscriptions/{{subscriptionId}}"): "admin",
        ("GET", f"{_NOTIFICATIONS}/deliveries"): "viewer",
    }
)


def app_routes() -> list[tuple[str, str]]:
    app = create_app(Settings.from_env({}), with_worker=False)
    return routes_of(app.routes)


def routes_of(routes: Sequence[BaseRoute]) -> list[tuple[str, str]]:
    """(method, path) of every route, inside included routers too: FastAPI (0.165) lists an included
    router as one entry that holds the router it was given (none of ours has a prefix)."""
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            found.extend(routes_of(included.routes))
        elif isinstance(route, APIRoute | Route):
            found.extend((method, route.path) for method in sorted(route.methods or ()) if method != "HEAD")
    return found


def test_every_route_is_in_the_table() -> None:
    missing = [f"{method} {path}" for method, path in app_routes() if (method, path) not in REQUIRED]
    assert not missing, f"routes without an entry in REQUIRED: {missing}"


def test_every_table_entry_is_a_route() -> None:
    stale = sorted(set(REQUIRED) - set(app_routes()))
    assert not stale, f"entries of REQUIRED that are no route of the app: {stale}"


def test_every_route__refuses_bad_tokens_and_lower_roles(api: Api) -> None:
    values = {"projectId": PROJECT, "teamId": "team1", "pipelineId": "main", "stage": "development"}
    values |= {"runId": api.run_id, "name": "dev", "key": INBOX_KEY, "token": "not-a-webhook-token"}
    values |= {
        "otherRunId": api.run_id,
        "node": "no-such-node",
        "decision": "reject",
        "other": "1",
        "version": "1",
        "tokenId": "no-such-token",
        "recordId": "no-such-record",
        "subscriptionId": "sub-none",
    }
    failures = []
    for method, path in app_routes():
        needed = REQUIRED[(method, path)]
        url = re.sub(r"\{(\w+)\}", lambda match: values[match.group(1)], path)
        cases: list[tuple[str | None, set[int] | None]] = []
        if needed is PUBLIC:
            cases.append((None, None))
        elif needed == OWN_SECRET:
            # Unknown webhook URLs answer 404 (they are the secret); unsigned deliveries 401.
            cases += [(None, {401, 404}), ("admin", {401, 404})]
        else:
            cases += [(None, {401}), ("expired", {401}), ("revoked", {401})]
            rank = ROLES.index(needed)
            cases += [(role, {403} if ROLES.index(role) < rank else None) for role in ROLES]
        for token, expected in cases:
            # An event stream lives for its lifetime: a short one here.
            params = {"lifetime": "0.5"} if path.endswith("/events") else None
            answer = api.call(method, url, token, follow_redirects=False, params=params)
            allowed = answer.status_code not in (401, 403) and answer.status_code < 500
            if (expected is None and not allowed) or (
                expected is not None and answer.status_code not in expected
            ):
                failures.append(f"{method} {url} as {token}: {answer.status_code} {answer.text[:200]}")
            if answer.status_code in (401, 403):
                assert isinstance(answer.json().get("error"), dict), f"{method} {url}: {answer.text}"
                assert answer.json()["error"]["message"], answer.text
    assert not failures, "\n".join(failures)


def test_refusals__say_why(api: Api) -> None:
    login = "/v1/login"
    assert "no token" in api.call("GET", login, None).json()["error"]["message"]
    assert "expired" in api.call("GET", login, "expired").json()["error"]["message"]
    assert "revoked" in api.call("GET", login, "revoked").json()["error"]["message"]
    refused = api.call(
        "POST", f"/v1/projects/{PROJECT}/pipelines/main/release-flows/development", "deployer", json={}
    )
    assert refused.status_code == 403
    assert "needs the admin role" in refused.json()["error"]["message"]
    other = api.call("GET", "/v1/projects/elsewhere/pipelines", "viewer")
    assert other.status_code == 403 and "is for project 'acme'" in other.json()["error"]["message"]
    wrong_key = api.call("POST", "/inbox/not-the-key-at-all/dev", None, json={"x": 1})
    assert wrong_key.status_code == 401 and "wrong inbox key" in wrong_key.text
    bogus = httpx.get(api.url + login, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bogus.status_code == 401 and "not known" in bogus.json()["error"]["message"]


def test_serve__prints_the_first_admin_token_once(releaseflow: Releaseflow) -> None:
    first = releaseflow.serve()
    token = releaseflow.admin_token
    assert (
        token
        and httpx.get(f"{releaseflow.url}/v1/login", headers=releaseflow.auth(), timeout=5).status_code == 200
    )
    assert releaseflow.stop(first) == 0
    releaseflow.serve()

    assert releaseflow.logs().count(token) == 1  # the second start printed no token
    assert releaseflow.logs().count("created the first API token") == 1
    assert f"/inbox/{INBOX_KEY}/NAME" in releaseflow.logs()


def test_token_list__shows_state_role_and_project_but_never_secrets(api: Api) -> None:
    listed = api.releaseflow.cli("token", "list", check=True).stdout
    lines = {line.split()[-1]: line for line in listed.splitlines()}

    assert "revoked" in lines["gone"] and "expired" in lines["brief"]
    assert "active" in lines["admin"] and "*" in lines["admin"]  # the initial admin token
    assert all(secret not in listed for secret in api.tokens.values())
    unknown = api.releaseflow.cli("token", "revoke", "nobody")
    bad_role = api.releaseflow.cli("token", "create", "--project", PROJECT, "--role", "owner")
    bad_expiry = api.releaseflow.cli(
        "token", "create", "--project", PROJECT, "--role", "viewer", "--expires", "soon"
    )
    assert unknown.returncode != 0 and "no token with the id or name 'nobody'" in unknown.stderr
    assert bad_role.returncode != 0 and "unknown role 'owner'" in bad_role.stderr
    assert bad_expiry.returncode != 0 and "--expires 'soon'" in bad_expiry.stderr

"""A served installation for the API tests: the acceptance configuration applied, a token per role,
an expired and a revoked token, and one finished run of Development."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from tests.acceptance.config import PROJECT, write_config
from tests.acceptance.support import Releaseflow, wait_until

ROLES = ("viewer", "deployer", "admin")
FLOW = f"/v1/projects/{PROJECT}/pipelines/main/release-flows/development"


@dataclass
class Api:
    releaseflow: Releaseflow
    tokens: dict[str, str]  # role in acme, "root" (admin everywhere), "expired", "revoked" -> secret
    run_id: str  # a finished run of Development

    @property
    def url(self) -> str:
        return self.releaseflow.url

    def call(
        self,
        method: str,
        path: str,
        token: str | None = "admin",
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A request as ``token`` (a role, "root", "expired" or "revoked"; None: no token)."""
        sent = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        return httpx.request(
            method, self.url + path, headers={**sent, **(headers or {})}, timeout=10, **kwargs
        )


def secret_of(output: str) -> str:
    """The secret ``releaseflow token create`` printed (its last line)."""
    return output.strip().splitlines()[-1]


def served_api(releaseflow: Releaseflow) -> Api:
    releaseflow.serve()
    config = write_config(releaseflow.cwd, releaseflow.url)
    releaseflow.cli("apply", "-f", str(config), check=True)
    tokens = {
        role: secret_of(
            releaseflow.cli("token", "create", "--project", PROJECT, "--role", role, check=True).stdout
        )
        for role in ROLES
    }
    tokens["expired"] = secret_of(
        releaseflow.cli(
            "token",
            "create",
            "--project",
            PROJECT,
            "--role",
            "admin",
            "--expires",
            "1s",
            "--name",
            "brief",
            check=True,
        ).stdout
    )
    tokens["revoked"] = secret_of(
        releaseflow.cli(
            "token", "create", "--project", "*", "--role", "admin", "--name", "gone", check=True
        ).stdout
    )
    releaseflow.cli("token", "revoke", "gone", check=True)
    assert releaseflow.admin_token, "serve printed no admin token on its first start"
    tokens["root"] = releaseflow.admin_token
    started = httpx.post(
        f"{releaseflow.url}{FLOW}/runs",
        json={"name": "first", "arguments": {"who": "api"}},
        headers={"Authorization": f"Bearer {tokens['deployer']}"},
        timeout=10,
    )
    assert started.status_code == 200, started.text
    run_id = started.json()["data"]["id"]
    api = Api(releaseflow, tokens, run_id)
    wait_until(
        lambda: api.call("GET", f"{FLOW}/runs/{run_id}").json()["data"]["concluded"] or None,
        what="the first run to end",
    )
    time.sleep(1.1)  # the "expired" token's second has passed (runs end sooner)
    return api

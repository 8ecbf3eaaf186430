"""Triggers against a real ``releaseflow serve``: signed GitHub and GitLab deliveries, replays, the
webhook URL (rotated, paused, pinned), the CLI's trigger log, and a local repository watched by polling."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml
from tests.acceptance.config import INBOX_KEY, message, workflow
from tests.acceptance.support import Releaseflow, find_node, wait_until

GITHUB_SECRET = "gh-shared-secret"
GITLAB_TOKEN = "gl-shared-token"
REPO = "https://github.com/acme/shop"
SHA = "0123456789abcdef0123456789abcdef01234567"


def write_config(folder: Path, server_url: str, repo: str, *, production_paused: bool = True) -> Path:
    """Pipeline ``hooks``: each stage says the trigger's branch and sha to the inbox (Production paused)."""

    def stage(name: str, inbox: str, paused: bool = False) -> dict[str, Any]:
        text = "${refs.git.branch}@${refs.git.sha}"
        return {
            "name": name,
            "releaseFlow": {
                "apiVersion": "v1.2",
                "triggers": [
                    {"ref": "git", "vcsService": "github", "repoUrl": repo, "branchRestrictions": ["main"]}
                ],
                "options": {"paused": paused},
                "spec": workflow(
                    "sequential", message("say", f"{server_url}/inbox/{INBOX_KEY}/{inbox}", text)
                ),
            },
        }

    config = {
        "projects": [
            {
                "id": "acme",
                "pipelines": [
                    {
                        "id": "hooks",
                        "stages": [
                            stage("Development", "dev"),
                            stage("Production", "prod", paused=production_paused),
                        ],
                    }
                ],
            }
        ]
    }
    path = folder / "triggers.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def github_push(branch: str = "main", message_text: str = "Change the header") -> bytes:
    payload = {
        "ref": f"refs/heads/{branch}",
        "after": SHA,
        "repository": {"html_url": REPO},
        "head_commit": {"message": message_text},
        "commits": [{"added": [], "modified": ["app.py"], "removed": []}],
    }
    return json.dumps(payload).encode()


def github_headers(body: bytes, delivery: str, secret: str = GITHUB_SECRET) -> dict[str, str]:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature,
        "Content-Type": "application/json",
    }


def serving(releaseflow: Releaseflow, repo: str, **env: str) -> None:
    releaseflow.extra_env.update(
        RELEASEFLOW_GITHUB_WEBHOOK_SECRET=GITHUB_SECRET, RELEASEFLOW_GITLAB_WEBHOOK_TOKEN=GITLAB_TOKEN, **env
    )
    releaseflow.serve()
    releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url, repo)), check=True)


def said(releaseflow: Releaseflow, inbox: str, count: int) -> list[str]:
    def arrived() -> list[str] | None:
        texts = [entry["body"]["message"] for entry in releaseflow.inbox(inbox)]
        return texts if len(texts) >= count else None

    return wait_until(arrived, timeout=20, what=f"{count} messages in inbox {inbox}")


def test_github__signed_push_starts_a_run_and_a_replay_or_bad_signature_does_not(
    releaseflow: Releaseflow,
) -> None:
    serving(releaseflow, REPO, RELEASEFLOW_GIT_POLL_SECONDS="0")
    hook = f"{releaseflow.url}/hooks/github"
    body = github_push()

    started = httpx.post(hook, content=body, headers=github_headers(body, "delivery-1"), timeout=10)
    replayed = httpx.post(hook, content=body, headers=github_headers(body, "delivery-1"), timeout=10)
    unsigned = httpx.post(hook, content=body, headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-2"})
    forged = httpx.post(
        hook, content=body, headers=github_headers(body, "delivery-3", secret="guess"), timeout=10
    )
    skipped = httpx.post(
        hook,
        content=github_push(message_text="Docs [skip ci]"),
        headers=github_headers(github_push(message_text="Docs [skip ci]"), "delivery-4"),
    )

    assert started.status_code == 201, started.text
    outcomes = {o["stage"]: o for o in started.json()["outcomes"]}
    assert outcomes["acme/hooks/Development"]["decision"] == "started"
    assert outcomes["acme/hooks/Production"]["decision"] == "skipped"
    assert "paused" in outcomes["acme/hooks/Production"]["reason"]
    assert said(releaseflow, "dev", 1) == [f"main@{SHA}"]
    assert replayed.status_code == 409 and "replay" in replayed.json()["error"]["message"]
    assert (unsigned.status_code, unsigned.json()["error"]["message"]) == (
        401,
        "the delivery is not signed (no X-Hub-Signature-256 header)",
    )
    assert forged.status_code == 401 and "does not match" in forged.json()["error"]["message"]
    assert skipped.status_code == 202
    assert {o["reason"] for o in skipped.json()["outcomes"]} >= {"the head commit's message says [skip ci]"}
    log = releaseflow.cli("triggers", "hooks", "development", check=True).stdout
    assert "started  github" in log and "skipped  github" in log and "[skip ci]" in log


def test_gitlab__token_checked_and_push_starts_a_run(releaseflow: Releaseflow) -> None:
    serving(releaseflow, "https://gitlab.com/acme/shop", RELEASEFLOW_GIT_POLL_SECONDS="0")
    payload = {
        "ref": "refs/heads/main",
        "after": SHA,
        "project": {"web_url": "https://gitlab.com/acme/shop"},
        "commits": [{"id": SHA, "message": "Tidy", "added": ["a"], "modified": [], "removed": []}],
    }
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "uuid-1"}
    hook = f"{releaseflow.url}/hooks/gitlab"
    wrong = httpx.post(hook, json=payload, headers={**headers, "X-Gitlab-Token": "nope"}, timeout=10)
    right = httpx.post(hook, json=payload, headers={**headers, "X-Gitlab-Token": GITLAB_TOKEN}, timeout=10)
    again = httpx.post(hook, json=payload, headers={**headers, "X-Gitlab-Token": GITLAB_TOKEN}, timeout=10)
    assert wrong.status_code == 401 and "X-Gitlab-Token" in wrong.json()["error"]["message"]
    assert right.status_code == 201, right.text
    assert again.status_code == 409
    assert said(releaseflow, "dev", 1) == [f"main@{SHA}"]


def test_webhook__url_runs_with_parameters_paused_answers_202_pinned_is_skipped(
    releaseflow: Releaseflow,
) -> None:
    serving(releaseflow, REPO, RELEASEFLOW_GIT_POLL_SECONDS="0")
    development = releaseflow.cli("webhook", "rotate", "hooks", "development", check=True).stdout.strip()
    production = releaseflow.cli("webhook", "rotate", "hooks", "production", check=True).stdout.strip()
    assert development.startswith(f"{releaseflow.url}/hooks/release-flows/")

    by_get = httpx.get(development, params={"name": "from ci", "git.sha": SHA}, timeout=10)
    by_post = httpx.post(development, params={"git%2Ebranch": "x"}, timeout=10)  # a field spelled wrong
    paused = httpx.post(production, timeout=10)
    assert by_get.status_code == 201, by_get.text
    assert said(releaseflow, "dev", 1) == [f"main@{SHA}"]
    assert releaseflow.run_detail(by_get.json()["runId"])["name"] == "from ci"
    assert by_post.status_code == 201  # an unknown parameter is an argument, and this run has no sha
    assert releaseflow.wait_for_run(by_post.json()["runId"], ("failed",))["status"] == "failed"
    assert paused.status_code == 202 and "paused" in paused.json()["reason"]

    releaseflow.cli("pin", "hooks", "development", "--reason", "hold", check=True)
    pinned = httpx.get(development, params={"git.sha": SHA}, timeout=10)
    assert pinned.status_code == 202 and "pinned" in pinned.json()["reason"]

    rotated = releaseflow.cli("webhook", "rotate", "hooks", "development", check=True).stdout.strip()
    assert httpx.get(development, timeout=10).status_code == 404
    log = releaseflow.cli("triggers", "hooks", "production", check=True).stdout
    assert f"webhook: {production}" in log and "skipped  webhook" in log
    assert f"webhook: {rotated}" in releaseflow.cli("triggers", "hooks", "development", check=True).stdout
    # A run by hand of the paused stage still starts, and says the flow is paused.
    by_hand = releaseflow.cli("run", "hooks", "production", "--override", f"git.sha={SHA}", "--follow")
    assert by_hand.returncode == 0, by_hand.stdout + by_hand.stderr
    assert said(releaseflow, "prod", 1) == [f"main@{SHA}"]
    assert "note: the release flow is paused: its triggers start no run" in by_hand.stdout


def git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=Tests", "-c", "user.email=tests@example.com", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=30).stdout.strip()


def test_local_repository__a_commit_starts_a_run_with_its_sha(releaseflow: Releaseflow) -> None:
    repo = releaseflow.cwd / "app"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("print('v1')\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "First")
    serving(releaseflow, str(repo), RELEASEFLOW_GIT_POLL_SECONDS="0.2")
    database = releaseflow.data_dir / "releaseflow.db"

    def first_look() -> bool:
        with sqlite3.connect(database) as connection:
            return bool(connection.execute("SELECT count(*) FROM git_watch_heads").fetchone()[0])

    wait_until(first_look, timeout=20, what="the poller's first look at the repository")
    (repo / "app.py").write_text("print('v2')\n")
    git(repo, "commit", "-q", "-am", "Second")
    sha = git(repo, "rev-parse", "HEAD")

    assert said(releaseflow, "dev", 1) == [f"main@{sha}"]
    log = releaseflow.cli("triggers", "hooks", "development", check=True).stdout
    assert f"push to main at {sha[:7]}" in log and "git poll" in log
    runs = releaseflow.cli_json("runs", "hooks", "Development", "--json")
    detail = releaseflow.run_detail(runs[0]["id"])
    say = find_node(detail["spec"], "say")
    assert say is not None and say["code"]["spec"]["spec"]["message"] == f"main@{sha}"
    assert detail["triggerRefs"] == {"git": {"branch": "main", "sha": sha, "repoUrl": str(repo)}}
    assert detail["origin"] == {"kind": "git", "by": f"main@{sha[:7]}"}

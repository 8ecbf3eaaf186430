"""GitHub and GitLab webhook deliveries: is the signature right, and which push or pull request is it?

GitHub signs the body with HMAC-SHA256 of the shared secret (``X-Hub-Signature-256: sha256=<hex>``);
GitLab sends the shared token itself (``X-Gitlab-Token``). Both are compared in constant time. Events
other than pushes and pull (merge) requests are not about releases: ``None``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from releaseflow.domain.git_rules import EventKind, GitEvent

GITHUB_SIGNATURE_PREFIX = "sha256="
# Pull request actions after which the request is open with new commits (GitHub, then GitLab).
_GITHUB_OPEN_ACTIONS = frozenset({"opened", "reopened", "synchronize", "ready_for_review"})
_GITLAB_OPEN_ACTIONS = frozenset({"open", "reopen", "update"})


def github_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return GITHUB_SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_signature_problem(secret: str, body: bytes, header: str | None) -> str | None:
    """None when the header signs the body with the secret; else what is wrong."""
    if not header:
        return "the delivery is not signed (no X-Hub-Signature-256 header)"
    if not hmac.compare_digest(github_signature(secret, body), header.strip()):
        return "the X-Hub-Signature-256 signature does not match the body and this server's secret"
    return None


def gitlab_token_problem(token: str, header: str | None) -> str | None:
    if not header:
        return "the delivery has no X-Gitlab-Token header"
    if not hmac.compare_digest(token.encode(), header.encode()):
        return "the X-Gitlab-Token does not match this server's token"
    return None


def _branch(ref: object) -> str | None:
    return ref.removeprefix("refs/heads/") if isinstance(ref, str) and ref.startswith("refs/heads/") else None


def _changed_paths(commits: object) -> tuple[str, ...] | None:
    if not isinstance(commits, list):
        return None
    paths: set[str] = set()
    for commit in commits:
        if isinstance(commit, Mapping):
            for key in ("added", "modified", "removed"):
                paths.update(str(path) for path in commit.get(key) or ())
    return tuple(sorted(paths))


def github_event(name: str, payload: Mapping[str, Any]) -> GitEvent | None:
    """The push or pull request a GitHub delivery (``X-GitHub-Event``) reports; None for others."""
    repository = payload.get("repository") or {}
    repo_url = str(repository.get("html_url") or repository.get("clone_url") or "")
    if name == "push":
        branch = _branch(payload.get("ref"))
        if branch is None:
            return None  # a tag
        head = payload.get("head_commit") or {}
        return GitEvent(
            EventKind.PUSH,
            repo_url,
            branch,
            str(payload.get("after", "")),
            head_message=str(head.get("message", "")),
            paths=_changed_paths(payload.get("commits")),
        )
    if name == "pull_request":
        request = payload.get("pull_request") or {}
        head = request.get("head") or {}
        action = str(payload.get("action", ""))
        return GitEvent(
            EventKind.PULL_REQUEST,
            repo_url,
            str(head.get("ref", "")),
            str(head.get("sha", "")),
            head_message=str(request.get("title", "")),
            pull_request_id=str(request.get("number", payload.get("number", ""))),
            draft=bool(request.get("draft", False)),
            open=action in _GITHUB_OPEN_ACTIONS,
        )
    return None


def gitlab_event(name: str, payload: Mapping[str, Any]) -> GitEvent | None:
    """The push or merge request a GitLab delivery (``X-Gitlab-Event``) reports; None for others."""
    project = payload.get("project") or {}
    repo_url = str(project.get("web_url") or project.get("git_http_url") or "")
    if name == "Push Hook":
        branch = _branch(payload.get("ref"))
        if branch is None:
            return None
        commits = payload.get("commits") or []
        after = str(payload.get("after") or payload.get("checkout_sha") or "")
        head = next((c for c in commits if isinstance(c, Mapping) and c.get("id") == after), {})
        return GitEvent(
            EventKind.PUSH,
            repo_url,
            branch,
            after,
            head_message=str(head.get("message", "")),
            paths=_changed_paths(commits),
        )
    if name == "Merge Request Hook":
        attributes = payload.get("object_attributes") or {}
        last = attributes.get("last_commit") or {}
        return GitEvent(
            EventKind.PULL_REQUEST,
            repo_url,
            str(attributes.get("source_branch", "")),
            str(last.get("id", "")),
            head_message=str(last.get("message", "")),
            pull_request_id=str(attributes.get("iid", "")),
            draft=bool(attributes.get("draft") or attributes.get("work_in_progress")),
            open=str(attributes.get("action", "")) in _GITLAB_OPEN_ACTIONS,
        )
    return None

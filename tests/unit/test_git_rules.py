"""Git trigger rules, webhook parameters and GitHub/GitLab deliveries, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from releaseflow.domain.git_events import (
    github_event,
    github_signature,
    github_signature_problem,
    gitlab_event,
    gitlab_token_problem,
)
from releaseflow.domain.git_rules import (
    DELETED_SHA,
    EventKind,
    GitEvent,
    branch_matches,
    check_trigger_refs,
    configured_refs,
    event_refs,
    match_trigger,
    normalise_repo_url,
    parse_webhook_parameters,
    path_selected,
    run_trigger_refs,
    split_trigger_overrides,
    watches,
)

REPO = "https://github.com/acme/web"
SHA = "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d"


def trigger(**fields: Any) -> dict[str, Any]:
    return {"ref": "git", "vcsService": "github", "repoUrl": REPO, "branchRestrictions": ["main"], **fields}


def push(
    branch: str = "main", message: str = "Fix the header", paths: tuple[str, ...] | None = ("app.py",)
) -> GitEvent:
    return GitEvent(EventKind.PUSH, REPO, branch, SHA, head_message=message, paths=paths)


def pull_request(branch: str = "feature/x", *, draft: bool = False, open: bool = True) -> GitEvent:
    return GitEvent(EventKind.PULL_REQUEST, REPO, branch, SHA, pull_request_id="7", draft=draft, open=open)


@pytest.mark.parametrize(
    ("pattern", "branch", "matches"),
    [
        ("main", "main", True),
        ("main", "main2", False),
        ("release/*", "release/1.2", True),
        ("release/*", "release/1/2", False),
        ("release/**", "release/1/2", True),
        ("v?", "v1", True),
        ("*", "feature/x", False),
        ("**", "feature/x", True),
    ],
)
def test_branch_matches__globs(pattern: str, branch: str, matches: bool) -> None:
    assert branch_matches([pattern], branch) is matches


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://github.com/acme/web.git", "github.com/acme/web"),
        ("git@github.com:acme/web.git", "github.com/acme/web"),
        ("https://GitHub.com/acme/web/", "github.com/acme/web"),
        ("file:///srv/git/app", "/srv/git/app"),
        ("/srv/git/app", "/srv/git/app"),
    ],
)
def test_normalise_repo_url__spellings_of_one_repository(url: str, normal: str) -> None:
    assert normalise_repo_url(url) == normal


@pytest.mark.parametrize(
    ("rules", "path", "selected"),
    [
        (["docs/"], "docs/guide.md", True),
        (["docs/"], "src/docs", False),  # a file named docs is not the directory
        (["*.md"], "src/deep/README.md", True),
        (["/build"], "build/out.js", True),
        (["/build"], "src/build/out.js", False),
        (["*.md", "!CHANGELOG.md"], "CHANGELOG.md", False),
        (["# a comment", ""], "app.py", False),
        (["src/**/*.py"], "src/a/b/c.py", True),
    ],
)
def test_path_selected__gitignore_rules(rules: list[str], path: str, selected: bool) -> None:
    assert path_selected(rules, path) is selected


def test_match_trigger__push_to_matching_branch_starts() -> None:
    assert match_trigger(trigger(), push()).starts


def test_match_trigger__push_to_other_branch_says_which_rules() -> None:
    result = match_trigger(trigger(), push("devel"))
    assert not result.starts
    assert result.reason == "branch devel matches no branch rule (main)"


def test_match_trigger__deleted_branch_starts_nothing() -> None:
    event = GitEvent(EventKind.PUSH, REPO, "main", DELETED_SHA)
    assert match_trigger(trigger(), event).reason == "branch main was deleted"


@pytest.mark.parametrize("message", ["Fix [skip ci]", "Docs [SKIP NF]\n\nbody", "[northflank skip] tidy"])
def test_match_trigger__default_skip_flags(message: str) -> None:
    result = match_trigger(trigger(), push(message=message))
    assert not result.starts
    assert result.reason.startswith("the head commit's message says [")


def test_match_trigger__own_skip_flags_replace_the_defaults() -> None:
    own = trigger(ciIgnoreFlags=["[hold]"])
    assert match_trigger(own, push(message="x [skip ci]")).starts
    assert not match_trigger(own, push(message="x [hold]")).starts


def test_match_trigger__skip_flags_disabled() -> None:
    assert match_trigger(trigger(ciIgnoreFlagsEnabled=False), push(message="x [skip ci]")).starts


def test_match_trigger__ignore_rules_skip_a_push_that_only_changes_ignored_files() -> None:
    rules = trigger(pathIgnoreRules=["docs/", "*.md"])
    result = match_trigger(rules, push(paths=("docs/a.md", "README.md")))
    assert result.reason == "every changed file is ignored by the path rules (2 changed)"
    assert match_trigger(rules, push(paths=("docs/a.md", "app.py"))).starts


def test_match_trigger__allow_list_needs_one_allowed_file() -> None:
    rules = trigger(pathIgnoreRules=["src/"], isAllowList=True)
    assert match_trigger(rules, push(paths=("src/app.py", "README.md"))).starts
    result = match_trigger(rules, push(paths=("README.md",)))
    assert result.reason == "no changed file is on the path allow list (1 changed)"


def test_match_trigger__unknown_paths_pass_the_path_rules() -> None:
    assert match_trigger(trigger(pathIgnoreRules=["*"]), push(paths=None)).starts


def test_match_trigger__pull_request_rules() -> None:
    rules = trigger(prRestrictions=["feature/*"], ignoreDrafts=True)
    assert match_trigger(rules, pull_request()).starts
    assert match_trigger(rules, pull_request("fix/y")).reason == (
        "branch fix/y matches no pull request rule (feature/*)"
    )
    assert "is a draft" in match_trigger(rules, pull_request(draft=True)).reason
    assert match_trigger(rules, pull_request(open=False)).reason == "pull request 7 is closed"
    assert not match_trigger(trigger(), pull_request()).starts  # no pull request rules


def test_match_trigger__manual_only_trigger_never_starts() -> None:
    assert match_trigger(trigger(manualOnly=True), push()).reason == "the trigger is manual only"


def test_watches__other_repository_is_not_this_triggers_business() -> None:
    assert watches(trigger(repoUrl="git@github.com:acme/web.git"), push())
    assert not watches(trigger(repoUrl="https://github.com/acme/api"), push())


def test_event_refs__branch_sha_repository_and_pull_request() -> None:
    assert event_refs(trigger(), push()) == {"branch": "main", "sha": SHA, "repoUrl": REPO}
    assert event_refs(trigger(), pull_request())["pullRequestId"] == "7"


def test_configured_refs__one_plain_branch_is_the_default() -> None:
    assert configured_refs(trigger()) == {"repoUrl": REPO, "branch": "main"}
    assert configured_refs(trigger(branchRestrictions=["release/*"])) == {"repoUrl": REPO}
    assert configured_refs(trigger(branchRestrictions=["main", "devel"])) == {"repoUrl": REPO}


def test_run_trigger_refs__given_values_win_over_configuration() -> None:
    refs = run_trigger_refs([trigger()], {"git": {"branch": "hotfix", "sha": SHA}})
    assert refs == {"git": {"repoUrl": REPO, "branch": "hotfix", "sha": SHA}}


def test_split_trigger_overrides__trigger_refs_leave_the_node_overrides() -> None:
    document = {"triggers": [trigger()]}
    nodes, values = split_trigger_overrides(
        document, {"git": {"branch": "devel", "sha": "x"}, "build": {"branch": "b"}}, {"git": {"sha": SHA}}
    )
    assert nodes == {"build": {"branch": "b"}}
    assert values == {"git": {"branch": "devel", "sha": SHA}}


def test_parse_webhook_parameters__labels_trigger_values_and_arguments() -> None:
    parsed, issues = parse_webhook_parameters(
        [("name", "nightly"), ("description", "from CI"), ("git.sha", SHA), ("image_tag", "v2")], ["git"]
    )
    assert issues == []
    assert (parsed.name, parsed.description) == ("nightly", "from CI")
    assert parsed.refs == {"git": {"sha": SHA}}
    assert parsed.arguments == {"image_tag": "v2"}


def test_parse_webhook_parameters__unknown_trigger_field_is_named() -> None:
    _, issues = parse_webhook_parameters([("git.colour", "red")], ["git"])
    assert [(issue.path, issue.message) for issue in issues] == [
        ("git.colour", "trigger 'git' has no field 'colour' (fields: branch, sha, repoUrl, pullRequestId)")
    ]


def test_check_trigger_refs__a_field_no_run_has_is_refused_with_its_path() -> None:
    spec = {
        "kind": "Workflow",
        "spec": {"steps": [{"spec": {"branch": "${refs.git.branch}-${refs.git.tag}"}}]},
    }
    issues = check_trigger_refs(spec, [trigger()], node_refs=[])
    assert [(issue.path, issue.message) for issue in issues] == [
        (
            "spec.spec.steps[0].spec.branch",
            "trigger 'git' has no field 'tag' (a run can read branch, sha, repoUrl, pullRequestId)",
        )
    ]


# GitHub and GitLab deliveries ------------------------------------------------------------------------


def test_github_signature__checked_in_full() -> None:
    body = b'{"a": 1}'
    good = github_signature("s3cret", body)
    assert github_signature_problem("s3cret", body, good) is None
    assert github_signature_problem("s3cret", body + b" ", good) is not None
    assert github_signature_problem("other", body, good) is not None
    assert github_signature_problem("s3cret", body, None) == (
        "the delivery is not signed (no X-Hub-Signature-256 header)"
    )


def test_gitlab_token__compared_whole() -> None:
    assert gitlab_token_problem("t0ken", "t0ken") is None
    assert gitlab_token_problem("t0ken", "t0ke") is not None
    assert gitlab_token_problem("t0ken", None) is not None


def test_github_event__push_with_changed_files() -> None:
    payload = {
        "ref": "refs/heads/main",
        "after": SHA,
        "repository": {"html_url": REPO},
        "head_commit": {"message": "Add [skip ci]"},
        "commits": [{"added": ["a.py"], "modified": ["b.py"], "removed": []}, {"removed": ["c.py"]}],
    }
    event = github_event("push", payload)
    assert event == GitEvent(
        EventKind.PUSH, REPO, "main", SHA, head_message="Add [skip ci]", paths=("a.py", "b.py", "c.py")
    )
    assert github_event("push", {**payload, "ref": "refs/tags/v1"}) is None
    assert github_event("issues", payload) is None


def test_github_event__pull_request() -> None:
    payload = {
        "action": "synchronize",
        "repository": {"html_url": REPO},
        "pull_request": {"number": 7, "draft": True, "head": {"ref": "feature/x", "sha": SHA}},
    }
    event = github_event("pull_request", payload)
    assert event is not None
    assert (event.kind, event.branch, event.pull_request_id, event.draft, event.open) == (
        EventKind.PULL_REQUEST,
        "feature/x",
        "7",
        True,
        True,
    )
    closed = github_event("pull_request", {**payload, "action": "closed"})
    assert closed is not None and not closed.open


def test_gitlab_event__push_and_merge_request() -> None:
    push_payload = {
        "ref": "refs/heads/main",
        "after": SHA,
        "project": {"web_url": "https://gitlab.com/acme/web"},
        "commits": [{"id": SHA, "message": "Tidy", "added": ["x"], "modified": [], "removed": []}],
    }
    event = gitlab_event("Push Hook", push_payload)
    assert event == GitEvent(
        EventKind.PUSH, "https://gitlab.com/acme/web", "main", SHA, head_message="Tidy", paths=("x",)
    )
    merge = gitlab_event(
        "Merge Request Hook",
        {
            "project": {"web_url": "https://gitlab.com/acme/web"},
            "object_attributes": {
                "iid": 3,
                "action": "open",
                "source_branch": "f",
                "last_commit": {"id": SHA},
            },
        },
    )
    assert merge is not None and (merge.pull_request_id, merge.branch, merge.open) == ("3", "f", True)


def test_check_refs__validation_names_a_trigger_field_no_run_can_have() -> None:
    from releaseflow.domain.template_parser import parse_template
    from releaseflow.domain.template_rules import check_refs

    command = {"jobId": "m", "command": "deploy ${refs.git.branch} ${fn.toUpper(refs.git.tag)}"}
    step = {
        "kind": "Action",
        "ref": "run",
        "spec": {"kind": "Job", "spec": {"type": "execute", "data": command}},
    }
    document = {
        "apiVersion": "v1.2",
        "triggers": [trigger()],
        "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": [step]}},
    }
    assert [(issue.path, issue.message) for issue in check_refs(parse_template(document))] == [
        (
            "spec.spec.steps[0].spec.spec.data.command",
            "trigger 'git' has no field 'tag' (a run can read branch, sha, repoUrl, pullRequestId)",
        )
    ]

"""Structural validation and model building (``releaseflow.domain.template_parser``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.template import ConcurrencyPolicy, RetrySettings, WorkflowType
from releaseflow.domain.template_format import MAX_NODE_COUNT, MAX_TREE_DEPTH
from releaseflow.domain.template_parser import parse_template

NORTHFLANK = Path(__file__).resolve().parent.parent / "fixtures" / "northflank"
EXAMPLES = sorted(NORTHFLANK.glob("*.json"))


def release(target: str = "api", ref: str | None = None, **extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "kind": "Release",
        "spec": {
            "type": "build",
            "origin": {"id": "builder", "branch": "main", "build": "latest"},
            "target": {"id": target, "type": "service"},
        },
        **extra,
    }
    if ref is not None:
        node["ref"] = ref
    return node


def template(*steps: dict[str, Any], type: str = "sequential", **top: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1.2",
        "spec": {"kind": "Workflow", "spec": {"type": type, "steps": list(steps)}},
        **top,
    }


def issues_of(document: Any) -> list[Issue]:
    with pytest.raises(ValidationError) as caught:
        parse_template(document)
    return list(caught.value.issues)


def messages(document: Any) -> dict[str, str]:
    return {issue.path: issue.message for issue in issues_of(document)}


# --- Northflank's documented examples ---------------------------------------------------------------


def test_northflank_examples__are_present() -> None:
    assert {path.name for path in EXAMPLES} >= {"deploy-build-parallel.json", "backup-migrate-promote.json"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_parse_template__accepts_northflank_example(path: Path) -> None:
    parsed = parse_template(json.loads(path.read_text()))
    assert parsed.root.kind == "Workflow"
    assert parsed.root.path == "spec"


def test_parse_template__builds_parallel_deploy_example() -> None:
    parsed = parse_template(json.loads((NORTHFLANK / "deploy-build-parallel.json").read_text()))
    assert parsed.root.workflow_type is WorkflowType.PARALLEL
    assert [(node.path, node.kind) for node in parsed.root.children] == [
        ("spec.spec.steps[0]", "Release"),
        ("spec.spec.steps[1]", "Release"),
    ]
    assert parsed.root.children[0].spec["target"] == {"id": "job-prod", "type": "job"}
    assert parsed.triggers == ()
    assert parsed.concurrency_policy is ConcurrencyPolicy.ALLOW


def test_parse_template__builds_backup_migrate_promote_example() -> None:
    parsed = parse_template(json.loads((NORTHFLANK / "backup-migrate-promote.json").read_text()))
    assert parsed.root.workflow_type is WorkflowType.SEQUENTIAL
    steps = parsed.root.children
    assert [node.kind for node in steps] == ["AddonBackup", "Release", "JobRun", "Release"]
    assert [node.condition for node in steps] == ["success", "running", "success", None]
    assert steps[3].spec["origin"] == {"id": "deployment-staging", "type": "service"}


# --- the model ----------------------------------------------------------------------------------------


def test_parse_template__nested_paths_and_refs() -> None:
    inner = {
        "kind": "Workflow",
        "ref": "inner",
        "spec": {"type": "parallel", "steps": [release("a"), release("b", "b")]},
    }
    parsed = parse_template(template(release("x", "x"), inner))
    assert [node.path for node in parsed.nodes()] == [
        "spec",
        "spec.spec.steps[0]",
        "spec.spec.steps[1]",
        "spec.spec.steps[1].spec.steps[0]",
        "spec.spec.steps[1].spec.steps[1]",
    ]
    assert set(parsed.by_ref()) == {"x", "inner", "b"}
    assert parsed.node("spec.spec.steps[1]").workflow_type is WorkflowType.PARALLEL


def test_parse_template__skip_node_execution_values() -> None:
    parsed = parse_template(
        template(
            release("a", skipNodeExecution="true"),
            release("b", skipNodeExecution="false"),
            release("c", skipNodeExecution=True),
            release("d", skipNodeExecution="${fn.eq(args.ENV, 'dev')}"),
            release("e"),
        )
    )
    assert [node.skip_node_execution for node in parsed.root.children] == [
        True,
        False,
        True,
        "${fn.eq(args.ENV, 'dev')}",
        None,
    ]


def test_parse_template__settings_and_timeout() -> None:
    parsed = parse_template(
        template(
            release(
                "a", settings={"maxAttempts": 5, "backoff": {"type": "fixed", "delay": 2}}, timeoutDuration=60
            ),
            release("b", settings={"maxAttempts": "${args.ATTEMPTS}"}, timeoutDuration="${args.T}"),
            release("c"),
        )
    )
    first, second, third = parsed.root.children
    assert first.settings == RetrySettings(max_attempts=5, backoff_seconds=2.0)
    assert first.timeout_duration == 60
    assert second.settings.max_attempts == "${args.ATTEMPTS}"
    assert second.timeout_duration == "${args.T}"
    assert third.settings == RetrySettings()


def test_parse_template__action_wait_is_read_from_its_spec() -> None:
    restart = {
        "kind": "Action",
        "spec": {
            "kind": "Service",
            "spec": {
                "type": "restart",
                "data": {"serviceId": "api", "timeoutDuration": 90},
                "condition": "running",
            },
        },
    }
    parsed = parse_template(template(restart))
    node = parsed.root.children[0]
    assert (node.condition, node.timeout_duration) == ("running", 90)


def test_parse_template__top_level_fields() -> None:
    parsed = parse_template(
        template(
            release(),
            arguments={"ENV": "dev"},
            triggers=[{"ref": "app", "vcsService": "github", "repoUrl": "https://github.com/a/b"}],
            options={"concurrencyPolicy": "queue", "paused": True},
            richInputs=[
                {
                    "kind": "BuildSelector",
                    "spec": {"title": "Pick", "inputs": {"source": "builder"}, "outputs": {}},
                }
            ],
            gitops={
                "vcsService": "github",
                "repoUrl": "https://github.com/a/b",
                "branch": "main",
                "filePath": "/f.json",
            },
            teardownSpec=None,
            project={},
            **{"$schema": "https://api.northflank.com/v1/schemas/release-flow"},
        )
    )
    assert parsed.arguments == {"ENV": "dev"}
    assert parsed.triggers[0]["ref"] == "app"
    assert parsed.concurrency_policy is ConcurrencyPolicy.QUEUE
    assert parsed.paused is True
    assert len(parsed.rich_inputs) == 1


def test_parse_template__does_not_share_the_input() -> None:
    document = template(release())
    parsed = parse_template(document)
    document["spec"]["spec"]["steps"].clear()
    assert len(parsed.root.children) == 1


def test_parse_template__expressions_stand_for_any_field_type() -> None:
    parse_template(
        template(
            {
                "kind": "Build",
                "spec": {"id": "${args.BUILDER}", "type": "service", "pullRequestId": "${args.PR}"},
            },
            {"kind": "JobRun", "spec": {"jobId": "migrate", "runtimeEnvironment": "${refs.x.env}"}},
            {"kind": "Approval", "spec": {"amount": "${args.APPROVERS}"}},
        )
    )


# --- bad templates ----------------------------------------------------------------------------------

BAD: list[tuple[str, Any, str, str]] = [
    ("not an object", [], "", "a release flow template must be a JSON object"),
    ("api version", {**template(release()), "apiVersion": "v2"}, "apiVersion", "must be 'v1.2'"),
    ("no spec", {"apiVersion": "v1.2"}, "spec", "is required"),
    ("unknown top-level key", {**template(release()), "name": "x"}, "name", "unknown field"),
    (
        "root not a workflow",
        {"apiVersion": "v1.2", "spec": release()},
        "spec.kind",
        "the root node must be a Workflow",
    ),
    (
        "workflow type",
        template(release(), type="serial"),
        "spec.spec.type",
        "must be one of sequential, parallel",
    ),
    (
        "steps not a list",
        {"apiVersion": "v1.2", "spec": {"kind": "Workflow", "spec": {"type": "parallel", "steps": {}}}},
        "spec.spec.steps",
        "must be a list",
    ),
    (
        "unknown kind",
        template({"kind": "Foo", "spec": {}}),
        "spec.spec.steps[0].kind",
        "unknown node kind 'Foo'",
    ),
    (
        "unsupported kind",
        template({"kind": "LoopWorkflow", "spec": {}}),
        "spec.spec.steps[0].kind",
        "node kind 'LoopWorkflow' is not supported by releaseflow",
    ),
    (
        "step not an object",
        template("x"),
        "spec.spec.steps[0]",
        "must be an object (a node with kind and spec)",
    ),  # type: ignore[arg-type]
    (
        "target type",
        template(
            release(),
            release(),
            {**release(), "spec": {**release()["spec"], "target": {"id": "a", "type": "addon"}}},
        ),
        "spec.spec.steps[2].spec.target.type",
        "must be one of service, job",
    ),
    (
        "release type",
        template({"kind": "Release", "spec": {"type": "git"}}),
        "spec.spec.steps[0].spec.type",
        "must be one of build, registry, deployment",
    ),
    (
        "promote origin needs type",
        template(
            {
                "kind": "Release",
                "spec": {"type": "deployment", "origin": {"id": "a"}, "target": {"id": "a", "type": "job"}},
            }
        ),
        "spec.spec.steps[0].spec.origin.type",
        "is required",
    ),
    (
        "release condition",
        template(release(condition="success")),
        "spec.spec.steps[0].condition",
        "must be 'running'",
    ),
    (
        "condition on a message",
        template(
            {
                "kind": "Message",
                "spec": {"kind": "RAW_WEBHOOK", "spec": {"webhookUrl": "u", "message": "m"}},
                "condition": "success",
            }
        ),
        "spec.spec.steps[0].condition",
        "unknown field",
    ),
    (
        "timeout too long",
        template(release(timeoutDuration=14401)),
        "spec.spec.steps[0].timeoutDuration",
        "must be between 1 and 14400",
    ),
    (
        "timeout zero",
        template(release(timeoutDuration=0)),
        "spec.spec.steps[0].timeoutDuration",
        "must be between 1 and 14400",
    ),
    (
        "timeout text",
        template(release(timeoutDuration="60")),
        "spec.spec.steps[0].timeoutDuration",
        "must be an integer or a ${...} expression",
    ),
    (
        "timeout bool",
        template(release(timeoutDuration=True)),
        "spec.spec.steps[0].timeoutDuration",
        "must be an integer or a ${...} expression",
    ),
    (
        "max attempts",
        template(release(settings={"maxAttempts": 0})),
        "spec.spec.steps[0].settings.maxAttempts",
        "must be between 1 and 100",
    ),
    (
        "backoff type",
        template(release(settings={"backoff": {"type": "exponential", "delay": 1}})),
        "spec.spec.steps[0].settings.backoff.type",
        "must be 'fixed'",
    ),
    (
        "backoff delay",
        template(release(settings={"backoff": {"delay": -1}})),
        "spec.spec.steps[0].settings.backoff.delay",
        "must be at least 0",
    ),
    (
        "skip value",
        template(release(skipNodeExecution="yes")),
        "spec.spec.steps[0].skipNodeExecution",
        'must be true, false, "true", "false" or a ${...} expression',
    ),
    (
        "ref slug",
        template(release(ref="my ref")),
        "spec.spec.steps[0].ref",
        "must be a slug of letters, digits, '-' and '_', starting with a letter or digit",
    ),
    (
        "ref with a dot",
        template(release(ref="a.b")),
        "spec.spec.steps[0].ref",
        "must be a slug of letters, digits, '-' and '_', starting with a letter or digit",
    ),
    (
        "duplicate ref",
        template(release(ref="a"), release(ref="a")),
        "spec.spec.steps[1].ref",
        "ref 'a' is already used by spec.spec.steps[0]",
    ),
    (
        "ref used by a trigger",
        template(
            release(ref="app"),
            triggers=[{"ref": "app", "vcsService": "github", "repoUrl": "https://github.com/a/b"}],
        ),
        "spec.spec.steps[0].ref",
        "ref 'app' is already used by triggers[0]",
    ),
    (
        "build needs type",
        template({"kind": "Build", "spec": {"id": "builder", "branch": "main"}}),
        "spec.spec.steps[0].spec.type",
        "is required",
    ),
    (
        "build branch and pull request",
        template(
            {"kind": "Build", "spec": {"id": "b", "type": "service", "branch": "main", "pullRequestId": 4}}
        ),
        "spec.spec.steps[0].spec",
        "set either 'branch' or 'pullRequestId', not both",
    ),
    (
        "build sha",
        template({"kind": "Build", "spec": {"id": "b", "type": "service", "sha": "abc"}}),
        "spec.spec.steps[0].spec.sha",
        "must be a 40-character commit sha",
    ),
    (
        "job run needs job",
        template({"kind": "JobRun", "spec": {}}),
        "spec.spec.steps[0].spec.jobId",
        "is required",
    ),
    (
        "backup type",
        template({"kind": "AddonBackup", "spec": {"addonId": "db", "backupType": "full"}}),
        "spec.spec.steps[0].spec.backupType",
        "must be one of dump, snapshot",
    ),
    (
        "execute needs command",
        template(
            {"kind": "Action", "spec": {"kind": "Job", "spec": {"type": "execute", "data": {"jobId": "j"}}}}
        ),
        "spec.spec.steps[0].spec.spec.data.command",
        "is required",
    ),
    (
        "action type for kind",
        template(
            {
                "kind": "Action",
                "spec": {"kind": "Addon", "spec": {"type": "execute", "data": {"addonId": "db"}}},
            }
        ),
        "spec.spec.steps[0].spec.spec.type",
        "must be 'restart'",
    ),
    (
        "byoc condition",
        template(
            {
                "kind": "Condition",
                "spec": {"kind": "BYOCCluster", "spec": {"type": "running", "data": {"clusterId": "c"}}},
            }
        ),
        "spec.spec.steps[0].spec.kind",
        "condition kind 'BYOCCluster' is not supported by releaseflow",
    ),
    (
        "vcs condition",
        template(
            {
                "kind": "Condition",
                "spec": {"kind": "VCS", "spec": {"type": "createRepoFromSourceSuccess", "data": {}}},
            }
        ),
        "spec.spec.steps[0].spec.kind",
        "condition kind 'VCS' is not supported by releaseflow",
    ),
    (
        "slack integration",
        template(
            {
                "kind": "Message",
                "spec": {
                    "kind": "SLACK",
                    "spec": {"webhookUrl": "u", "integrationInternalId": "slack", "message": "hi"},
                },
            }
        ),
        "spec.spec.steps[0].spec.spec.integrationInternalId",
        "Slack integrations are not supported by releaseflow; use webhookUrl",
    ),
    (
        "vcs message",
        template({"kind": "Message", "spec": {"kind": "VCS", "spec": {}}}),
        "spec.spec.steps[0].spec.kind",
        "message kind 'VCS' (pull request comments) is not supported by releaseflow",
    ),
    (
        "approval amount",
        template({"kind": "Approval", "spec": {"amount": 0}}),
        "spec.spec.steps[0].spec.amount",
        "must be at least 1",
    ),
    ("unknown node field", template(release(colour="red")), "spec.spec.steps[0].colour", "unknown field"),
    (
        "unknown spec field",
        template({"kind": "JobRun", "spec": {"jobId": "j", "job": "x"}}),
        "spec.spec.steps[0].spec.job",
        "unknown field",
    ),
    (
        "concurrency",
        template(release(), options={"concurrencyPolicy": "never"}),
        "options.concurrencyPolicy",
        "must be one of allow, queue, forbid, latest, replace",
    ),
    ("paused", template(release(), options={"paused": "yes"}), "options.paused", "must be true or false"),
    ("arguments", template(release(), arguments=[]), "arguments", "must be an object"),
    ("triggers", template(release(), triggers={}), "triggers", "must be a list"),
    (
        "trigger repo",
        template(release(), triggers=[{"vcsService": "github"}]),
        "triggers[0].repoUrl",
        "is required",
    ),
    (
        "trigger vcs",
        template(release(), triggers=[{"vcsService": "svn", "repoUrl": "r"}]),
        "triggers[0].vcsService",
        "must be one of bitbucket, gitlab, github, self-hosted, azure",
    ),
    (
        "trigger expressions",
        template(release(), triggers=[{"vcsService": "github", "repoUrl": "r", "isAllowList": "${args.X}"}]),
        "triggers[0].isAllowList",
        "must be true or false",
    ),
    (
        "rich input kind",
        template(release(), richInputs=[{"kind": "Slider", "spec": {}}]),
        "richInputs[0].kind",
        "must be one of BranchCommitSelector, BuildSelector",
    ),
    (
        "rich input title",
        template(release(), richInputs=[{"kind": "BuildSelector", "spec": {"inputs": {"source": "b"}}}]),
        "richInputs[0].spec.title",
        "is required",
    ),
    (
        "gitops path",
        template(
            release(), gitops={"vcsService": "github", "repoUrl": "r", "branch": "main", "filePath": "f.json"}
        ),
        "gitops.filePath",
        "must be a path starting with '/'",
    ),
    (
        "teardown policy",
        template(release(), teardownSpec={"failurePolicy": "retry"}),
        "teardownSpec.failurePolicy",
        "must be one of ignore, block",
    ),
]


@pytest.mark.parametrize(
    ("document", "path", "message"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_parse_template__reports_bad_template(document: Any, path: str, message: str) -> None:
    assert Issue(path, message) in issues_of(document)


def test_parse_template__reports_every_issue_at_once() -> None:
    document = template(
        release(timeoutDuration=0),
        {"kind": "Foo", "spec": {}},
        {"kind": "JobRun", "spec": {}, "condition": "running"},
        type="serial",
        options={"concurrencyPolicy": "never"},
        extra=1,
    )
    assert set(issues_of(document)) == {
        Issue("spec.spec.type", "must be one of sequential, parallel"),
        Issue("spec.spec.steps[0].timeoutDuration", "must be between 1 and 14400"),
        Issue("spec.spec.steps[1].kind", "unknown node kind 'Foo'"),
        Issue("spec.spec.steps[2].spec.jobId", "is required"),
        Issue("spec.spec.steps[2].condition", "must be 'success'"),
        Issue("options.concurrencyPolicy", "must be one of allow, queue, forbid, latest, replace"),
        Issue("extra", "unknown field"),
    }


def test_parse_template__error_message_lists_paths() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_template(template(release(timeoutDuration=0)))
    assert "spec.spec.steps[0].timeoutDuration: must be between 1 and 14400" in str(caught.value)
    assert caught.value.subject == "template"


def test_parse_template__reports_expression_syntax_with_path() -> None:
    document = template(release(), {"kind": "JobRun", "spec": {"jobId": "${refs.build.id"}})
    assert any(issue.path.startswith("spec.spec.steps[1].spec.jobId") for issue in issues_of(document))


def test_parse_template__accepts_short_timeouts_northflank_would_refuse() -> None:
    # Northflank's minimum is 30 s; releaseflow accepts 1 s so tests and demos stay fast.
    assert parse_template(template(release(timeoutDuration=1))).root.children[0].timeout_duration == 1


def test_parse_template__accepts_origin_without_id_when_build_comes_from_a_ref() -> None:
    node = release()
    node["spec"]["origin"] = {"build": "${refs.start-build.id}"}
    parse_template(
        template({"kind": "Build", "ref": "start-build", "spec": {"id": "b", "type": "service"}}, node)
    )


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = release()
    for _ in range(depth - 1):
        node = {"kind": "Workflow", "spec": {"type": "sequential", "steps": [node]}}
    return node


def test_parse_template__accepts_maximum_depth() -> None:
    parse_template({"apiVersion": "v1.2", "spec": _nested(MAX_TREE_DEPTH)})


def test_parse_template__refuses_deeper_trees() -> None:
    issues = issues_of({"apiVersion": "v1.2", "spec": _nested(MAX_TREE_DEPTH + 1)})
    assert len(issues) == 1
    assert issues[0].message == f"nodes nest too deeply: at most {MAX_TREE_DEPTH} levels of workflows"
    assert issues[0].path == "spec" + ".spec.steps[0]" * MAX_TREE_DEPTH


def test_parse_template__refuses_too_many_nodes() -> None:
    issues = issues_of(template(*[release() for _ in range(MAX_NODE_COUNT)]))
    assert issues == [
        Issue(
            f"spec.spec.steps[{MAX_NODE_COUNT - 1}]",
            f"too many nodes: a template may hold at most {MAX_NODE_COUNT}",
        )
    ]


def test_parse_template__refuses_documents_nested_too_deeply() -> None:
    value: Any = "x"
    for _ in range(5000):
        value = [value]
    issues = issues_of(template(release(), arguments={"deep": value}))
    assert issues == [Issue("", "document nests deeper than 128 levels")]


def test_parse_template__refuses_cyclic_python_objects() -> None:
    document = template(release())
    document["arguments"] = {"self": document}
    assert issues_of(document)[0].message.startswith("document nests deeper")


def test_parse_template__accepts_every_kind() -> None:
    steps = [
        release(),
        {
            "kind": "Release",
            "spec": {
                "type": "registry",
                "origin": {"imagePath": "nginx:1"},
                "target": {"id": "a", "type": "service"},
            },
        },
        {
            "kind": "Release",
            "spec": {
                "type": "deployment",
                "origin": {"id": "a", "type": "job"},
                "target": {"id": "a", "type": "job"},
            },
        },
        {
            "kind": "Build",
            "spec": {
                "id": "b",
                "type": "service",
                "pullRequestId": 3,
                "buildOverrides": {"buildArguments": {"A": "1"}},
            },
            "condition": "success",
        },
        {
            "kind": "JobRun",
            "spec": {
                "jobId": "j",
                "deployment": {
                    "internal": {"id": "b", "buildSHA": "latest"},
                    "docker": {"configType": "customCommand", "customCommand": "migrate"},
                },
            },
        },
        {
            "kind": "AddonBackup",
            "spec": {
                "addonId": "db",
                "compressionType": "zstd",
                "additionalDestinations": [{"destinationId": "s3", "retentionTime": 7, "type": "custom"}],
            },
        },
        {
            "kind": "Action",
            "spec": {
                "kind": "Service",
                "spec": {
                    "type": "execute",
                    "data": {"serviceId": "api", "command": "sh -c 'x'", "options": {"dispatchOnly": True}},
                },
            },
        },
        {
            "kind": "Action",
            "spec": {
                "kind": "AddonBackup",
                "spec": {
                    "type": "restore",
                    "data": {"addonId": "db", "backupId": "b1"},
                    "condition": "success",
                },
            },
        },
        {
            "kind": "Condition",
            "spec": {"kind": "JobRun", "spec": {"type": "success", "data": {"jobId": "j", "runId": "r"}}},
        },
        {
            "kind": "Condition",
            "spec": {
                "kind": "Addon",
                "spec": {"type": "running", "data": {"addonId": "db", "timeoutDuration": 30}},
            },
        },
        {
            "kind": "Message",
            "spec": {
                "kind": "SLACK",
                "spec": {"webhookUrl": "https://hooks.slack.com/x", "message": "*done*"},
            },
        },
        {"kind": "Approval", "spec": {"amount": 2}},
    ]
    parsed = parse_template(template(*copy.deepcopy(steps)))
    assert [node.kind for node in parsed.root.children] == [step["kind"] for step in steps]

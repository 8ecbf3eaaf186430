"""Stage resources and reference order (``releaseflow.domain.template_rules``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from releaseflow.domain.errors import Issue
from releaseflow.domain.template import Template
from releaseflow.domain.template_parser import parse_template
from releaseflow.domain.template_rules import StageScope, check_refs, check_template

NORTHFLANK = Path(__file__).resolve().parent.parent / "fixtures" / "northflank"

PRODUCTION = StageScope(
    stage="Production",
    services=frozenset({"deployment-prod", "web"}),
    jobs=frozenset({"job-prod"}),
    addons=frozenset({"postgres-prod"}),
    build_services=frozenset({"builder", "build-service"}),
    previous_stage="Staging",
    previous_services=frozenset({"deployment-staging"}),
    previous_jobs=frozenset({"job-staging"}),
)
DEVELOPMENT = StageScope(
    stage="Development",
    services=frozenset({"deployment-service"}),
    jobs=frozenset(),
    addons=frozenset(),
    build_services=frozenset({"build-service"}),
)


def wf(*steps: dict[str, Any], type: str = "sequential", **extra: Any) -> dict[str, Any]:
    return {"kind": "Workflow", "spec": {"type": type, "steps": list(steps)}, **extra}


def doc(*steps: dict[str, Any], type: str = "sequential", **top: Any) -> dict[str, Any]:
    return {"apiVersion": "v1.2", "spec": wf(*steps, type=type), **top}


def deploy(
    target: str, ref: str | None = None, target_type: str = "service", **origin: Any
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "kind": "Release",
        "spec": {
            "type": "build",
            "origin": origin or {"id": "builder", "branch": "main", "build": "latest"},
            "target": {"id": target, "type": target_type},
        },
    }
    if ref:
        node["ref"] = ref
    return node


def job(ref: str, job_id: str = "job-prod", **spec: Any) -> dict[str, Any]:
    return {"kind": "JobRun", "ref": ref, "spec": {"jobId": job_id, **spec}}


def stage_issues(document: dict[str, Any], scope: StageScope = PRODUCTION) -> list[Issue]:
    return check_template(parse_template(document), scope)


def ref_issues(document: dict[str, Any]) -> list[Issue]:
    return check_refs(parse_template(document))


# --- check_template -------------------------------------------------------------------------------


def test_check_template__northflank_examples_fit_their_stage() -> None:
    for name in ("deploy-build-parallel.json", "backup-migrate-promote.json"):
        assert stage_issues(json.loads((NORTHFLANK / name).read_text())) == []
    for name in ("rich-input-branch-commit-selector.json", "rich-input-build-selector.json"):
        assert stage_issues(json.loads((NORTHFLANK / name).read_text()), DEVELOPMENT) == []


def test_check_template__missing_target() -> None:
    document = doc(deploy("web"), deploy("web"), deploy("api"))
    assert stage_issues(document) == [
        Issue("spec.spec.steps[2].spec.target.id", "no service or job 'api' in stage Production")
    ]


def test_check_template__target_of_the_wrong_type() -> None:
    assert stage_issues(doc(deploy("job-prod"), deploy("web", target_type="job"))) == [
        Issue("spec.spec.steps[0].spec.target.id", "'job-prod' is a job in stage Production, not a service"),
        Issue("spec.spec.steps[1].spec.target.id", "'web' is a service in stage Production, not a job"),
    ]


def test_check_template__missing_build_service() -> None:
    assert stage_issues(doc(deploy("web", id="nope", branch="main"))) == [
        Issue("spec.spec.steps[0].spec.origin.id", "no build service 'nope' in this project")
    ]


def test_check_template__promote_from_previous_stage() -> None:
    promote = {
        "kind": "Release",
        "spec": {
            "type": "deployment",
            "origin": {"id": "web", "type": "service"},
            "target": {"id": "web", "type": "service"},
        },
    }
    assert stage_issues(doc(promote)) == [
        Issue("spec.spec.steps[0].spec.origin.id", "no service or job 'web' in the previous stage Staging")
    ]


def test_check_template__first_stage_cannot_promote() -> None:
    promote = {
        "kind": "Release",
        "spec": {
            "type": "deployment",
            "origin": {"id": "x", "type": "service"},
            "target": {"id": "deployment-service", "type": "service"},
        },
    }
    assert stage_issues(doc(promote), DEVELOPMENT) == [
        Issue(
            "spec.spec.steps[0].spec.origin.id",
            "stage Development is the first stage: there is no previous stage to promote from",
        )
    ]


def test_check_template__every_kind_names_resources_of_its_stage() -> None:
    document = doc(
        {"kind": "Build", "spec": {"id": "nobuilder", "type": "service", "branch": "main"}},
        {"kind": "Build", "spec": {"id": "nojob", "type": "job"}},
        job("run", "nojob"),
        {"kind": "AddonBackup", "spec": {"addonId": "noaddon"}},
        {
            "kind": "Action",
            "spec": {"kind": "Service", "spec": {"type": "restart", "data": {"serviceId": "nosvc"}}},
        },
        {
            "kind": "Action",
            "spec": {
                "kind": "Job",
                "spec": {"type": "execute", "data": {"jobId": "job-prod", "command": "x"}},
            },
        },
        {
            "kind": "Condition",
            "spec": {"kind": "Addon", "spec": {"type": "running", "data": {"addonId": "postgres-prod"}}},
        },
        {
            "kind": "Condition",
            "spec": {"kind": "Build", "spec": {"type": "success", "data": {"buildId": "any-build"}}},
        },
    )
    assert stage_issues(document) == [
        Issue("spec.spec.steps[0].spec.id", "no build service 'nobuilder' in this project"),
        Issue("spec.spec.steps[1].spec.id", "no job 'nojob' in stage Production"),
        Issue("spec.spec.steps[2].spec.jobId", "no job 'nojob' in stage Production"),
        Issue("spec.spec.steps[3].spec.addonId", "no addon 'noaddon' in stage Production"),
        Issue("spec.spec.steps[4].spec.spec.data.serviceId", "no service 'nosvc' in stage Production"),
    ]


def test_check_template__rich_input_source_must_be_a_build_service() -> None:
    document = doc(
        deploy("web"),
        richInputs=[{"kind": "BuildSelector", "spec": {"title": "t", "inputs": {"source": "nope"}}}],
    )
    assert stage_issues(document) == [
        Issue("richInputs[0].spec.inputs.source", "no build service 'nope' in this project")
    ]


def test_check_template__expressions_are_left_to_run_time() -> None:
    document = doc(deploy("${args.TARGET}", id="${args.BUILDER}"), job("j", "${args.JOB}"))
    assert stage_issues(document) == []


# --- check_refs -----------------------------------------------------------------------------------


def test_check_refs__earlier_sequential_step_is_fine() -> None:
    document = doc(job("migrate"), deploy("web", "w", id="builder", build="${refs.migrate.id}"))
    assert ref_issues(document) == []


def test_check_refs__northflank_example_reads_its_build() -> None:
    document = json.loads((NORTHFLANK / "rich-input-branch-commit-selector.json").read_text())
    assert ref_issues(document) == []


def test_check_refs__unknown_ref() -> None:
    document = doc(deploy("web", build="${refs.build.id}"))
    assert ref_issues(document) == [
        Issue("spec.spec.steps[0].spec.origin.build", "no node or trigger has ref 'build'")
    ]


def test_check_refs__trigger_refs_are_always_available() -> None:
    document = doc(
        {
            "kind": "Build",
            "spec": {
                "id": "builder",
                "type": "service",
                "branch": "${refs.app.branch}",
                "sha": "${refs.app.sha}",
            },
        },
        triggers=[{"ref": "app", "vcsService": "github", "repoUrl": "https://github.com/a/b"}],
    )
    assert ref_issues(document) == []


def test_check_refs__later_step_is_refused() -> None:
    document = doc(deploy("web", build="${refs.migrate.id}"), job("migrate"))
    assert ref_issues(document) == [
        Issue(
            "spec.spec.steps[0].spec.origin.build",
            "node 'migrate' runs after this node (in sequential workflow spec)",
        )
    ]


def test_check_refs__parallel_sibling_is_refused() -> None:
    document = doc(job("migrate"), deploy("web", build="${refs.migrate.id}"), type="parallel")
    assert ref_issues(document) == [
        Issue(
            "spec.spec.steps[1].spec.origin.build",
            "node 'migrate' runs in parallel with this node (both under spec):"
            " it is not certain to have finished",
        )
    ]


def test_check_refs__nested_branches_use_the_lowest_common_ancestor() -> None:
    document = doc(
        wf(job("a"), job("b"), type="parallel"),
        wf(deploy("web", build="${refs.a.id}"), deploy("web", build="${refs.c.id}"), job("c")),
    )
    assert ref_issues(document) == [
        Issue(
            "spec.spec.steps[1].spec.steps[1].spec.origin.build",
            "node 'c' runs after this node (in sequential workflow spec.spec.steps[1])",
        )
    ]


def test_check_refs__inside_a_parallel_workflow_a_sequence_orders_its_own_steps() -> None:
    document = doc(
        wf(job("a"), job("b", runtimeEnvironment={"A": "${refs.a.id}"})), job("c"), type="parallel"
    )
    assert ref_issues(document) == []


def test_check_refs__self_reference() -> None:
    assert ref_issues(doc(job("a", runtimeEnvironment={"X": "${refs.a.id}"}))) == [
        Issue("spec.spec.steps[0].spec.runtimeEnvironment.X", "node 'a' cannot reference itself")
    ]


def test_check_refs__ancestor_and_descendant() -> None:
    document = doc(
        {**wf(job("inner", runtimeEnvironment={"X": "${refs.outer.id}"})), "ref": "outer"},
        {**wf(job("child")), "ref": "parent", "skipNodeExecution": "${refs.child.skipped}"},
    )
    assert ref_issues(document) == [
        Issue(
            "spec.spec.steps[0].spec.steps[0].spec.runtimeEnvironment.X",
            "node 'outer' contains this node: its output is not ready until this node has finished",
        ),
        Issue(
            "spec.spec.steps[1].skipNodeExecution",
            "node 'child' is inside this workflow: it has not run when this workflow starts",
        ),
    ]


def test_check_refs__workflow_skip_may_read_earlier_siblings() -> None:
    document = doc(job("gate"), {**wf(job("x")), "skipNodeExecution": "${refs.gate.skip}"})
    assert ref_issues(document) == []


def test_check_refs__refs_in_settings_and_timeout() -> None:
    document = doc(
        {**job("a"), "settings": {"maxAttempts": "${refs.later.n}"}, "timeoutDuration": "${refs.later.t}"},
        job("later"),
    )
    assert [issue.path for issue in ref_issues(document)] == [
        "spec.spec.steps[0].settings.maxAttempts",
        "spec.spec.steps[0].timeoutDuration",
    ]


def test_check_refs__cycle() -> None:
    document = doc(
        job("a", runtimeEnvironment={"X": "${refs.b.id}"}),
        job("b", runtimeEnvironment={"X": "${refs.a.id}"}),
    )
    assert ref_issues(document) == [Issue("spec.spec.steps[0]", "cycle of refs: a -> b -> a")]


def test_check_refs__longer_cycle_is_reported_once() -> None:
    document = doc(
        job("a", runtimeEnvironment={"X": "${refs.c.id}"}),
        job("b", runtimeEnvironment={"X": "${refs.a.id}"}),
        job("c", runtimeEnvironment={"X": "${refs.b.id}"}),
        job("d", runtimeEnvironment={"X": "${refs.a.id}"}),
    )
    assert ref_issues(document) == [Issue("spec.spec.steps[0]", "cycle of refs: a -> c -> b -> a")]


@pytest.mark.parametrize("count", [1, 50])
def test_check_refs__long_chains_are_fine(count: int) -> None:
    steps = [job("n0")] + [
        job(f"n{i}", runtimeEnvironment={"X": f"${{refs.n{i - 1}.id}}"}) for i in range(1, count)
    ]
    assert ref_issues(doc(*steps)) == []


def _release_flow(release: dict[str, object]) -> Template:
    return parse_template(
        {
            "apiVersion": "v1.2",
            "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": [release]}},
        }
    )


def _scope_with_drivers(drivers: dict[str, str]) -> StageScope:
    return StageScope(
        stage="Production",
        services=frozenset({"web"}),
        jobs=frozenset(),
        addons=frozenset(),
        build_services=frozenset({"builder"}),
        previous_stage="Staging",
        previous_services=frozenset({"web-staging"}),
        drivers=drivers,
    )


def test_check_template__an_image_cannot_go_to_a_local_service() -> None:
    release = {
        "kind": "Release",
        "spec": {
            "type": "registry",
            "origin": {"imagePath": "nginx:1"},
            "target": {"id": "web", "type": "service"},
        },
    }
    issues = check_template(_release_flow(release), _scope_with_drivers({"web": "local"}))
    assert [issue.path for issue in issues] == ["spec.spec.steps[0].spec.target.id"]
    assert "local driver" in issues[0].message and "docker" in issues[0].message
    assert check_template(_release_flow(release), _scope_with_drivers({"web": "docker"})) == []


def test_check_template__a_release_stays_within_one_driver() -> None:
    release = {
        "kind": "Release",
        "spec": {
            "type": "deployment",
            "origin": {"id": "web-staging", "type": "service"},
            "target": {"id": "web", "type": "service"},
        },
    }
    issues = check_template(
        _release_flow(release), _scope_with_drivers({"web": "local", "web-staging": "docker"})
    )
    assert [issue.path for issue in issues] == ["spec.spec.steps[0].spec.target.id"]
    assert "one driver" in issues[0].message

"""Stages side by side, a stage's timeline, run differences and plans, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

from releaseflow.domain.concurrency import Admission, AdmissionAction
from releaseflow.domain.release_history import (
    Deployed,
    HistoryEntry,
    StateChange,
    artifact_key,
    compare_stages,
    promotion_links,
)
from releaseflow.domain.run_diff import MISSING, document_diff, value_changes
from releaseflow.domain.run_plan import admission_plan, release_plan
from releaseflow.domain.template_parser import parse_template

T = datetime(2026, 11, 1, tzinfo=UTC)
V1 = {"kind": "build", "buildService": "b", "buildId": "1", "commit": "aaa"}
V2 = {"kind": "build", "buildService": "b", "buildId": "2", "commit": "bbb"}


def promote(origin: str, target: str) -> dict[str, object]:
    return {
        "kind": "Release",
        "spec": {
            "type": "deployment",
            "origin": {"id": origin, "type": "service"},
            "target": {"id": target, "type": "service"},
        },
    }


def flow(*steps: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "v1.2",
        "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": list(steps)}},
    }


def test_artifact_key__image_then_commit_then_build() -> None:
    assert artifact_key({"kind": "image", "image": "nginx:1"}) == "image:nginx:1"
    assert artifact_key(V1) == artifact_key({**V1, "buildId": "other"}) == "commit:aaa"
    assert artifact_key({"kind": "build", "buildService": "b", "buildId": "9"}) == "build:b:9"
    assert artifact_key(None) is None


def test_promotion_links__found_in_nested_workflows() -> None:
    nested = {"kind": "Workflow", "spec": {"type": "parallel", "steps": [promote("job-dev", "job-stg")]}}
    assert promotion_links(
        [flow(promote("web-dev", "web-stg"), nested), flow(promote("web-stg", "web"))]
    ) == [
        ("web-dev", "web-stg"),
        ("job-dev", "job-stg"),
        ("web-stg", "web"),
    ]


def test_compare_stages__a_row_per_promotion_chain_and_which_stages_differ() -> None:
    stages = ["Development", "Staging", "Production"]
    resources = {
        "Development": ["web-dev", "tool"],
        "Staging": ["web-stg", "job-stg"],
        "Production": ["web", "job"],
    }
    kinds = {"web-dev": "service", "tool": "job", "web-stg": "service", "web": "service"}
    kinds |= {"job-stg": "job", "job": "job"}
    # The staging job is promoted from the development service: no link between service and job.
    links = [("web-dev", "web-stg"), ("web-stg", "web"), ("web-dev", "job-stg"), ("job-stg", "job")]
    state = {
        "web-dev": Deployed("web-dev", V2, "run-3", T),
        "web-stg": Deployed("web-stg", V1, "run-2", T),
        "web": Deployed("web", {**V1, "buildId": "rebuilt"}, "run-1", T),
    }

    comparison = compare_stages(stages, resources, links, state, kinds)

    assert [lineage.label for lineage in comparison.lineages] == ["web", "tool", "job"]
    web = comparison.lineages[0]
    assert [cell.resources[0][0] for cell in web.cells] == ["web-dev", "web-stg", "web"]
    assert comparison.lineages[1].cell("Development").resources == (("tool", None),)
    assert [(d.left, d.right, d.differing, d.compared) for d in comparison.differences] == [
        ("Development", "Staging", ("web",), 1),
        ("Staging", "Production", (), 2),  # same commit, whatever the build id; job runs nothing yet
    ]


def test_state_change__a_redeploy_of_what_already_ran_is_no_change() -> None:
    entry = HistoryEntry(2, "web", V1, "r2", "p", T)
    assert StateChange(entry, None).changed  # a first deploy
    assert StateChange(entry, V2).changed
    assert not StateChange(entry, {**V1, "buildId": "again"}).changed  # the same commit, built again


def test_value_changes__added_removed_and_changed_keys() -> None:
    changes = value_changes({"a": 1, "b": 2, "n": None}, {"b": 3, "c": 4, "n": None})
    assert [(c.key, c.before, c.after) for c in changes] == [
        ("a", 1, MISSING),
        ("b", 2, 3),
        ("c", MISSING, 4),
    ]


def test_document_diff__unified_and_empty_when_equal() -> None:
    assert document_diff({"a": 1}, {"a": 1}, "one", "two") == []
    lines = document_diff({"a": 1}, {"a": 2}, "one", "two")
    assert lines[:2] == ["--- one", "+++ two"]
    assert '-  "a": 1' in lines and '+  "a": 2' in lines


def test_admission_plan__position_and_who_is_ahead() -> None:
    assert admission_plan(Admission(AdmissionAction.START), [], [])["position"] == 0
    queued = admission_plan(Admission(AdmissionAction.QUEUE, reason="r"), ["a"], ["b", "c"])
    assert (queued["position"], queued["ahead"]) == (3, ["a", "b", "c"])
    latest = admission_plan(Admission(AdmissionAction.QUEUE, drop_queued=("b", "c")), ["a"], ["b", "c"])
    assert (latest["position"], latest["ahead"], latest["supersedes"]) == (1, ["a"], ["b", "c"])


def test_release_plan__what_each_deploy_replaces_and_brings() -> None:
    template = parse_template(
        flow(
            {"kind": "Build", "ref": "build", "spec": {"id": "b", "type": "service", "branch": "main"}},
            {
                "kind": "Release",
                "ref": "dev",
                "spec": {
                    "type": "build",
                    "origin": {"id": "b", "branch": "main", "build": "${refs.build.id}"},
                    "target": {"id": "web-dev", "type": "service"},
                },
            },
            {**promote("web-dev", "web"), "ref": "prod"},
            {
                "kind": "Release",
                "ref": "img",
                "spec": {
                    "type": "registry",
                    "origin": {"imagePath": "nginx:1"},
                    "target": {"id": "cache", "type": "service"},
                },
            },
        )
    )
    deployed = {"web-dev": V1, "web": V2}

    plan = release_plan(template, deployed, lambda node: node.spec)

    assert [(p["ref"], p["replaces"], p["deploys"]) for p in plan] == [
        ("dev", V1, None),
        ("prod", V2, V1),
        ("img", None, {"kind": "image", "image": "nginx:1"}),
    ]
    assert "known once the run gets there" in plan[0]["deploysFrom"]
    assert plan[1]["deploysFrom"] == "what web-dev runs now (promotion)"

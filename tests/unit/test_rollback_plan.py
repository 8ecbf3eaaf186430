"""Rollback planning, pure: which targets change, the document it runs, where a target ends."""

from __future__ import annotations

import pytest

from releaseflow.domain.errors import ConflictError
from releaseflow.domain.rollback import (
    TargetChange,
    admission_policy,
    describe_artifact,
    plan_rollback,
    release_origin,
    rollback_document,
    rollback_outcome,
    rollback_policy,
    same_artifact,
)
from releaseflow.domain.run_origin import OriginKind, RunOrigin
from releaseflow.domain.template import ConcurrencyPolicy
from releaseflow.domain.template_parser import parse_template


def build(build_id: str) -> dict[str, str]:
    return {
        "kind": "build",
        "buildService": "builder",
        "buildId": build_id,
        "commit": "abc",
        "branch": "main",
    }


IMAGE = {"kind": "image", "image": "registry.example/web:1.2", "credentials": "ci"}
STAGE = [("api", "service"), ("web", "service"), ("migrate", "job"), ("db", "addon")]


def test_plan_rollback__every_service_and_job_goes_back_and_the_rest_is_explained() -> None:
    after = {"api": build("b1"), "migrate": build("b1"), "gone": build("b1")}
    now = {"api": build("b3"), "migrate": build("b1"), "web": build("b3")}

    plan = plan_rollback("r1", after, now, STAGE)

    assert [(c.resource_id, c.kind, c.unchanged) for c in plan.changes] == [
        ("api", "service", False),
        ("migrate", "job", True),
    ]
    assert [(left.resource_id, left.reason) for left in plan.left_as_is] == [
        ("web", "nothing was deployed to it yet right after run r1"),
        ("gone", "no longer part of the stage"),
    ]


def test_plan_rollback__with_nothing_recorded_for_the_stage_is_refused() -> None:
    with pytest.raises(ConflictError, match="nothing to roll back to"):
        plan_rollback("r1", {"db": build("b1")}, {}, STAGE)


def test_rollback_document__exact_artifacts_in_a_template_the_engine_accepts() -> None:
    plan = plan_rollback("r1", {"api": build("b1"), "migrate": IMAGE}, {}, STAGE)

    document = rollback_document(plan, ConcurrencyPolicy.ALLOW)
    template = parse_template(document)

    assert template.concurrency_policy is ConcurrencyPolicy.QUEUE  # never beside another run
    api, migrate = document["spec"]["spec"]["steps"]
    assert api["spec"]["origin"] == {"id": "builder", "build": "b1", "branch": "main"}
    assert (api["ref"], api["condition"]) == ("rollback-api", "running")
    assert migrate["spec"]["type"] == "registry" and "condition" not in migrate
    assert migrate["spec"]["origin"] == {"imagePath": "registry.example/web:1.2", "credentials": "ci"}


def test_release_origin__an_artifact_naming_nothing_deployable_is_refused() -> None:
    with pytest.raises(ConflictError, match="names neither a build nor an image"):
        release_origin({"kind": "build"})


@pytest.mark.parametrize("policy", list(ConcurrencyPolicy))
def test_rollback_policy__keeps_the_stage_policy_except_allow(policy: ConcurrencyPolicy) -> None:
    expected = ConcurrencyPolicy.QUEUE if policy is ConcurrencyPolicy.ALLOW else policy
    assert rollback_policy(policy) is expected


def test_rollback_outcome__each_target_is_on_its_old_or_its_rolled_back_artifact() -> None:
    changes = [
        TargetChange("api", "service", build("b3"), build("b1")),
        TargetChange("web", "service", build("b3"), build("b1")),
        TargetChange("migrate", "job", None, build("b1")),
        TargetChange("worker", "service", build("b3"), build("b1")),
    ]
    state = {"api": build("b1"), "web": build("b3"), "worker": build("b9")}

    outcome = rollback_outcome(changes, state)

    assert [(item.resource_id, item.where) for item in outcome] == [
        ("api", "rolled back"),
        ("web", "old"),
        ("migrate", "old"),
        ("worker", "other"),
    ]


def test_same_artifact__builds_by_id_images_by_reference() -> None:
    assert same_artifact(build("b1"), {**build("b1"), "commit": "other"})
    assert not same_artifact(build("b1"), build("b2"))
    assert same_artifact(IMAGE, {"kind": "image", "image": IMAGE["image"]})
    assert not same_artifact(IMAGE, build("b1"))
    assert describe_artifact(build("b1")) == "build builder:b1 (abc)"
    assert describe_artifact(None) == "nothing"


def test_run_origin__labels_and_what_a_pin_refuses() -> None:
    assert RunOrigin(OriginKind.GIT, "main").label() == "git push main"
    assert RunOrigin().label() == "person"
    assert [kind for kind in OriginKind if RunOrigin(kind).automatic] == [OriginKind.GIT, OriginKind.WEBHOOK]
    with pytest.raises(ValueError, match="unknown run origin 'cron'"):
        RunOrigin.parse("cron")


@pytest.mark.parametrize(
    ("kind", "others", "expected"),
    [
        ("release", [], ConcurrencyPolicy.ALLOW),
        ("release", ["release"], ConcurrencyPolicy.ALLOW),
        ("release", ["rollback"], ConcurrencyPolicy.QUEUE),
        ("rollback", ["release"], ConcurrencyPolicy.QUEUE),
        ("rollback", [], ConcurrencyPolicy.ALLOW),
    ],
)
def test_admission_policy__a_release_and_a_rollback_never_overlap(
    kind: str, others: list[str], expected: ConcurrencyPolicy
) -> None:
    assert admission_policy(ConcurrencyPolicy.ALLOW, kind, others) is expected
    assert admission_policy(ConcurrencyPolicy.FORBID, kind, others) is ConcurrencyPolicy.FORBID

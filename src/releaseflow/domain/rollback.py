"""Rollback planning: from the release state a stage had right after run R to a release flow document.

A rollback is the one kind of run that acts without a template of the user's: its plan is derived
from recorded state. Planning is pure: the engine reads the state, asks the drivers whether the
artifacts still exist, and hands both here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from releaseflow.domain.errors import ConflictError
from releaseflow.domain.template import ConcurrencyPolicy

# Kinds of resources a rollback redeploys (addons are backed up and restored, never redeployed).
DEPLOYABLE_KINDS = ("service", "job")
REF_PREFIX = "rollback-"

Artifact = Mapping[str, Any]


@dataclass(frozen=True)
class TargetChange:
    """One service or job: what it runs now and what it ran right after the run rolled back to."""

    resource_id: str
    kind: str
    from_artifact: Artifact | None
    to_artifact: Artifact

    @property
    def unchanged(self) -> bool:
        return self.from_artifact is not None and same_artifact(self.from_artifact, self.to_artifact)

    @property
    def ref(self) -> str:
        return REF_PREFIX + self.resource_id


@dataclass(frozen=True)
class LeftAsIs:
    """A resource of the stage the rollback does not touch, and why."""

    resource_id: str
    reason: str


@dataclass(frozen=True)
class RollbackPlan:
    run_id: str  # the run rolled back to
    changes: tuple[TargetChange, ...]
    left_as_is: tuple[LeftAsIs, ...]


def same_artifact(first: Artifact, second: Artifact) -> bool:
    """Whether two recorded artifacts are the same thing: the same build, or the same image."""
    if first.get("buildId") or second.get("buildId"):
        return bool(first.get("buildId")) and first.get("buildId") == second.get("buildId")
    return bool(first.get("image")) and first.get("image") == second.get("image")


def plan_rollback(
    run_id: str,
    after_run: Mapping[str, Artifact],
    current: Mapping[str, Artifact],
    stage_resources: Sequence[tuple[str, str]],
) -> RollbackPlan:
    """What rolling the stage back to run ``run_id`` changes.

    ``after_run``: the artifact of each resource right after the run concluded; ``current``: what
    each runs now; ``stage_resources``: (id, kind) of every resource the stage holds now. Every
    service and job of the stage that had an artifact after the run goes back to it; one that had
    none then is left as it is (there is nothing to go back to).
    """
    changes: list[TargetChange] = []
    left: list[LeftAsIs] = []
    for resource_id, kind in stage_resources:
        if kind not in DEPLOYABLE_KINDS:
            continue
        artifact = after_run.get(resource_id)
        if artifact is None:
            left.append(LeftAsIs(resource_id, f"nothing was deployed to it yet right after run {run_id}"))
            continue
        changes.append(TargetChange(resource_id, kind, current.get(resource_id), artifact))
    held = {resource_id for resource_id, _ in stage_resources}
    for resource_id in sorted(set(after_run) - held):
        left.append(LeftAsIs(resource_id, "no longer part of the stage"))
    if not changes:
        raise ConflictError(
            f"nothing to roll back to: no service or job of the stage had a release recorded right after"
            f" run {run_id}"
        )
    return RollbackPlan(run_id, tuple(changes), tuple(left))


def release_origin(artifact: Artifact) -> tuple[str, dict[str, Any]]:
    """The Release node ``type`` and ``origin`` that put exactly ``artifact`` on a target."""
    if artifact.get("buildId"):
        origin = {"id": artifact.get("buildService"), "build": artifact["buildId"]}
        if artifact.get("branch"):
            origin["branch"] = artifact["branch"]
        return "build", {key: value for key, value in origin.items() if value is not None}
    if artifact.get("image"):
        origin = {"imagePath": artifact["image"]}
        if artifact.get("credentials"):
            origin["credentials"] = artifact["credentials"]
        return "registry", origin
    raise ConflictError(f"the recorded artifact {dict(artifact)} names neither a build nor an image")


def rollback_policy(policy: ConcurrencyPolicy) -> ConcurrencyPolicy:
    """The stage's policy, except that a rollback never runs beside another run of the stage: with
    ``allow`` it would interleave with a release on the same targets, so it queues instead."""
    return ConcurrencyPolicy.QUEUE if policy is ConcurrencyPolicy.ALLOW else policy


def admission_policy(policy: ConcurrencyPolicy, kind: str, others: Iterable[str]) -> ConcurrencyPolicy:
    """The policy a new run of ``kind`` is admitted under, given the kinds of the runs that hold or
    wait for the stage (``others``): a release and a rollback never run side by side on the same
    targets, so where ``allow`` would let them, the new run queues."""
    others = list(others)
    if policy is ConcurrencyPolicy.ALLOW and others and (kind == "rollback" or "rollback" in others):
        return ConcurrencyPolicy.QUEUE
    return policy


def rollback_document(plan: RollbackPlan, policy: ConcurrencyPolicy) -> dict[str, Any]:
    """A release flow of Release nodes, one per target, in parallel; services wait until healthy."""
    steps = []
    for change in plan.changes:
        release_type, origin = release_origin(change.to_artifact)
        node: dict[str, Any] = {
            "kind": "Release",
            "ref": change.ref,
            "spec": {
                "type": release_type,
                "origin": origin,
                "target": {"id": change.resource_id, "type": change.kind},
            },
        }
        if change.kind == "service":
            node["condition"] = "running"
        steps.append(node)
    return {
        "apiVersion": "v1.2",
        "options": {"concurrencyPolicy": str(rollback_policy(policy))},
        "spec": {"kind": "Workflow", "spec": {"type": "parallel", "steps": steps}},
    }


def restore_document(addon_id: str, backup_id: str, policy: ConcurrencyPolicy) -> dict[str, Any]:
    """A release flow of one Action that restores ``backup_id`` into the addon and waits for it."""
    action = {
        "kind": "Action",
        "ref": "restore",
        "spec": {
            "kind": "AddonBackup",
            "spec": {
                "type": "restore",
                "data": {"addonId": addon_id, "backupId": backup_id},
                "condition": "success",
            },
        },
    }
    return {
        "apiVersion": "v1.2",
        "options": {"concurrencyPolicy": str(rollback_policy(policy))},
        "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": [action]}},
    }


@dataclass(frozen=True)
class TargetOutcome:
    """Where one target of a rollback stands once the rollback run ended."""

    resource_id: str
    where: str  # "rolled back", "old" (still on the artifact it had before), or "other"
    artifact: Artifact | None


def rollback_outcome(
    changes: Iterable[TargetChange], state_after: Mapping[str, Artifact]
) -> list[TargetOutcome]:
    """Per target: on its rolled-back artifact, or still on its old one (a failed deploy leaves the
    previous release running); "other" only if something else deployed to it meanwhile."""
    outcomes = []
    for change in changes:
        now = state_after.get(change.resource_id)
        if now is not None and same_artifact(now, change.to_artifact):
            where = "rolled back"
        elif (now is None and change.from_artifact is None) or (
            now is not None and change.from_artifact is not None and same_artifact(now, change.from_artifact)
        ):
            where = "old"
        else:
            where = "other"
        outcomes.append(TargetOutcome(change.resource_id, where, now))
    return outcomes


def describe_artifact(artifact: Mapping[str, Any] | None) -> str:
    """One line for an artifact: the image, or build id and commit of a build."""
    if not artifact:
        return "nothing"
    if artifact.get("kind") == "image" or not artifact.get("buildId"):
        return str(artifact.get("image", "?"))
    commit = str(artifact.get("commit", ""))[:10]
    return f"build {artifact.get('buildService', '?')}:{artifact.get('buildId')}" + (
        f" ({commit})" if commit else ""
    )

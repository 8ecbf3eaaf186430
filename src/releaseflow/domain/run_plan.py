"""The plan of a run: what it will do, decided before it starts (pure).

A plan is a JSON document, so a run can keep the plan it was started with and every interface shows
it the same way::

    stage, flowVersion, concurrencyPolicy, arguments, overrides, releaseNodeOverrides
    admission   {action: start|queue|reject, reason, position (0: starts at once), ahead: [run ids],
                 aborts: [run ids] (policy replace), supersedes: [queued run ids] (latest, replace)}
    problems    ["path: message"]: what the dry run cannot resolve (the run would fail before starting)
    nodes       [{path, kind, ref, depth, workflowType, skip}]: the tree, depth first, document order
    releases    [{path, ref, target, targetType, type, replaces, deploys, deploysFrom}]: per Release
                node, the artifact its target runs now (``replaces``, null: nothing yet) and the one
                it will deploy (``deploys``, null when it is known only once the run gets there;
                ``deploysFrom`` says where it comes from in words)
    carriedOver [paths]: nodes a resumed run keeps from the run it resumes (not run again)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from releaseflow.domain.concurrency import Admission, AdmissionAction
from releaseflow.domain.errors import Issue
from releaseflow.domain.template import Node, NodeKind, Template


def admission_plan(admission: Admission, active: Sequence[str], queued: Sequence[str]) -> dict[str, Any]:
    """Where a new run would stand under its flow's concurrency policy."""
    ahead: list[str] = []
    position = 0
    if admission.action is AdmissionAction.QUEUE:
        # Runs the policy drops from the queue are not ahead of it; those it keeps are.
        kept = [run for run in queued if run not in admission.drop_queued]
        ahead = [*active, *kept]
        position = len(kept) + 1
    return {
        "action": str(admission.action),
        "reason": admission.reason,
        "position": position,
        "ahead": ahead,
        "aborts": list(admission.abort_active),
        "supersedes": list(admission.drop_queued),
    }


def tree_plan(template: Template) -> list[dict[str, Any]]:
    """The node tree as rows, depth first in document order."""
    rows: list[dict[str, Any]] = []

    def visit(node: Node, depth: int) -> None:
        rows.append(
            {
                "path": node.path,
                "kind": str(node.kind),
                "ref": node.ref,
                "depth": depth,
                "workflowType": str(node.workflow_type) if node.workflow_type else None,
                "skip": node.skip_node_execution if node.skip_node_execution not in (None, False) else None,
            }
        )
        for child in node.children:
            visit(child, depth + 1)

    visit(template.root, 0)
    return rows


def release_plan(
    template: Template,
    deployed: Mapping[str, Mapping[str, Any]],
    resolve: Callable[[Node], Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Per Release node: what its target runs now and what it will deploy.

    ``deployed``: the artifact each resource runs now (release state); ``resolve``: a node's spec
    with every expression that can be resolved before the run resolved (refs to nodes stay written).
    """
    releases = []
    for node in template.nodes():
        if node.kind is not NodeKind.RELEASE:
            continue
        spec = resolve(node)
        target = _mapping(spec.get("target"))
        origin = _mapping(spec.get("origin"))
        kind = str(spec.get("type", ""))
        deploys, source = _next_artifact(kind, origin, deployed)
        target_id = target.get("id")
        releases.append(
            {
                "path": node.path,
                "ref": node.ref,
                "target": target_id,
                "targetType": target.get("type"),
                "type": kind,
                "replaces": dict(deployed[target_id])
                if isinstance(target_id, str) and target_id in deployed
                else None,
                "deploys": deploys,
                "deploysFrom": source,
            }
        )
    return releases


def _next_artifact(
    kind: str, origin: Mapping[str, Any], deployed: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, Any] | None, str]:
    if kind == "deployment":
        origin_id = origin.get("id")
        current = deployed.get(origin_id) if isinstance(origin_id, str) else None
        if current is None:
            return None, f"what {origin_id} runs; it has no release yet, so this deploy will fail"
        return dict(current), f"what {origin_id} runs now (promotion)"
    if kind == "registry":
        image = origin.get("imagePath")
        if isinstance(image, str) and not _unresolved(image):
            return {"kind": "image", "image": image}, "a registry image"
        return None, f"the image {image} (resolved when the run gets there)"
    service = origin.get("id")
    build = next((origin[key] for key in ("build", "buildId", "buildSHA") if origin.get(key)), None)
    words = f"build service {service}" + (f", branch {origin['branch']}" if origin.get("branch") else "")
    if isinstance(build, str) and not _unresolved(build):
        return {"kind": "build", "buildService": service, "buildId": build}, f"{words}, build {build}"
    return None, words + (
        f", build {build} (known once the run gets there)" if build else ", its latest build"
    )


def _unresolved(text: str) -> bool:
    return "${" in text


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def run_plan(
    *,
    stage: str,
    flow_version: int,
    template: Template,
    arguments: Mapping[str, Any],
    overrides: Mapping[str, Any],
    release_node_overrides: Mapping[str, Any],
    admission: dict[str, Any],
    problems: Sequence[Issue],
    releases: list[dict[str, Any]],
    carried_over: Sequence[str] = (),
) -> dict[str, Any]:
    """The whole plan document (see the module's doc)."""
    return {
        "stage": stage,
        "flowVersion": flow_version,
        "concurrencyPolicy": str(template.concurrency_policy),
        "arguments": dict(arguments),
        "overrides": dict(overrides),
        "releaseNodeOverrides": dict(release_node_overrides),
        "admission": admission,
        "problems": [str(issue) for issue in problems],
        "nodes": tree_plan(template),
        "releases": releases,
        "carriedOver": list(carried_over),
    }

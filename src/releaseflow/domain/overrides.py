"""Per-run changes to a template: ``overrides`` and ``releaseNodeOverrides`` of the run request.

Northflank's run endpoint (compat 4.1) takes two kinds of change, applied to a copy of the template
for that run only:

* ``overrides[ref]``: a shallow patch of the ``spec`` of the node with that ref, e.g.
  ``{"start-build": {"branch": "devel"}}`` changes only ``branch``.
* ``releaseNodeOverrides[targetId]``: a new ``spec`` for every Release node deploying to that service
  or job, e.g. ``{"api": {"type": "registry", "origin": {"imagePath": "nginx:latest"}}}``; the
  node's target is kept (the key already names it).

Release-node overrides are applied first and ref overrides second, so that a patch aimed at one node by
its ref refines a replacement aimed at a target. The result is a new document; callers parse it again
(``parse_template``) because an override may well make a template invalid.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from typing import Any

from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.template_fields import join_path

SUBJECT = "run overrides"


def apply_run_overrides(
    document: Mapping[str, Any],
    overrides: Mapping[str, Mapping[str, Any]] | None,
    release_node_overrides: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """Return a copy of ``document`` with both kinds of override applied; the input is not changed."""
    result: dict[str, Any] = copy.deepcopy(dict(document))
    nodes = list(_nodes(result.get("spec")))
    issues: list[Issue] = []

    for target_id, replacement in _entries(release_node_overrides, "releaseNodeOverrides", issues):
        path = join_path("releaseNodeOverrides", target_id)
        matched = [node for node in nodes if node.get("kind") == "Release" and _target_id(node) == target_id]
        if not matched:
            issues.append(Issue(path, f"no Release node deploys to '{target_id}'"))
            continue
        for node in matched:
            target = node["spec"]["target"]
            node["spec"] = {**copy.deepcopy(dict(replacement)), "target": target}

    by_ref = {node["ref"]: node for node in nodes if isinstance(node.get("ref"), str)}
    for ref, patch in _entries(overrides, "overrides", issues):
        patched = by_ref.get(ref)
        if patched is None:
            issues.append(Issue(join_path("overrides", ref), f"no node has ref '{ref}'"))
            continue
        spec = patched.get("spec")
        base = dict(spec) if isinstance(spec, Mapping) else {}
        patched["spec"] = {**base, **copy.deepcopy(dict(patch))}

    if issues:
        raise ValidationError(issues, subject=SUBJECT)
    return result


def _entries(value: object, name: str, issues: list[Issue]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The (key, object) pairs of one override map; request bodies are JSON, so check their shape."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        issues.append(Issue(name, "must be an object"))
        return
    for key, item in value.items():
        if not isinstance(key, str):
            issues.append(Issue(join_path(name, key), "keys must be strings"))
        elif not isinstance(item, Mapping):
            issues.append(Issue(join_path(name, key), "must be an object"))
        else:
            yield key, item


def _target_id(node: Mapping[str, Any]) -> object:
    spec = node.get("spec")
    target = spec.get("target") if isinstance(spec, Mapping) else None
    return target.get("id") if isinstance(target, Mapping) else None


def _nodes(root: object) -> Iterator[dict[str, Any]]:
    """Every node dict of the tree below ``root`` (the template may not be valid: be tolerant)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield node
        spec = node.get("spec")
        if (
            node.get("kind") == "Workflow"
            and isinstance(spec, Mapping)
            and isinstance(spec.get("steps"), list)
        ):
            stack.extend(reversed(spec["steps"]))


def parse_release_spec(text: str, where: str, issues: list[Issue]) -> dict[str, Any] | None:
    """A Release node spec given as JSON text (a run's release override from a flag or a form);
    None, with the problem added to ``issues`` at ``where``, when it is not a JSON object."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        issues.append(Issue(where, f"the value is not JSON: {error.msg} at column {error.colno}"))
        return None
    if not isinstance(spec, dict):
        issues.append(Issue(where, "the value must be a JSON object (a Release node spec)"))
        return None
    return spec

"""Checks of a parsed template that need context: the stage's resources, and the order of execution.

``check_template`` answers "does every resource this template names exist where it must?" for one
stage of a pipeline; ``check_refs`` answers "is every ``${refs.X}`` guaranteed to have a value when the
node that reads it starts?". Both return every issue found (empty list: fine); neither raises.
Only literal ids are checked against the stage: a ``${...}`` id is resolved and checked at run time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from releaseflow.domain.errors import Issue
from releaseflow.domain.expressions import referenced_refs
from releaseflow.domain.git_rules import check_trigger_refs
from releaseflow.domain.template import Node, Template, WorkflowType
from releaseflow.domain.template_fields import FieldValue, Str, is_expression, iter_fields, join_path
from releaseflow.domain.template_format import (
    ADDON,
    BUILD_OBJECT,
    BUILD_SERVICE,
    JOB,
    NODE_KINDS,
    PROMOTE_ORIGIN,
    RICH_INPUT,
    SERVICE,
    TARGET,
)


@dataclass(frozen=True)
class StageScope:
    """What exists in the stage a release flow belongs to (and in the stage before it)."""

    stage: str
    services: frozenset[str]
    jobs: frozenset[str]
    addons: frozenset[str]
    build_services: frozenset[str]
    previous_stage: str | None = None
    previous_services: frozenset[str] = frozenset()
    previous_jobs: frozenset[str] = frozenset()
    # The driver of every resource of the project, by id (when known, deploys are checked against it).
    drivers: Mapping[str, str] = field(default_factory=dict)


# Drivers that run only builds of build services, never an external image.
BUILD_ONLY_DRIVERS = frozenset({"local"})


# ---------------------------------------------------------------------------------------------------
# Resources


def check_template(template: Template, scope: StageScope) -> list[Issue]:
    """Every resource id a node names exists in ``scope`` with the right type."""
    located: list[Iterator[FieldValue]] = [
        iter_fields(NODE_KINDS[node.kind].spec, node.document.get("spec"), join_path(node.path, "spec"))
        for node in template.nodes()
    ]
    located.extend(
        iter_fields(RICH_INPUT, rich_input, f"richInputs[{index}]")
        for index, rich_input in enumerate(template.rich_inputs)
    )
    issues: list[Issue] = []
    for found in itertools.chain.from_iterable(located):
        if not isinstance(found.spec, Str) or found.spec.resource is None:
            continue
        if not isinstance(found.value, str) or is_expression(found.value):
            continue
        message = _check_resource(found.spec.resource, found.value, found.parent, scope)
        if message is not None:
            issues.append(Issue(found.path, message))
    if not issues and scope.drivers:
        issues.extend(_check_release_drivers(template, scope.drivers))
    return issues


def _check_release_drivers(template: Template, drivers: Mapping[str, str]) -> list[Issue]:
    """A Release must put on its target something the target's driver can run."""
    issues = []
    for node in template.nodes():
        if node.kind != "Release":
            continue
        spec = node.spec
        target, origin = spec.get("target"), spec.get("origin")
        if not isinstance(target, Mapping) or not isinstance(origin, Mapping):
            continue
        target_id = target.get("id")
        if not isinstance(target_id, str) or is_expression(target_id) or target_id not in drivers:
            continue
        driver = drivers[target_id]
        path = f"{node.path}.spec.target.id"
        if spec.get("type") == "registry" and driver in BUILD_ONLY_DRIVERS:
            issues.append(
                Issue(
                    path,
                    f"'{target_id}' uses the {driver} driver, which runs builds of build services;"
                    " deploying an image needs a container driver (docker)",
                )
            )
            continue
        origin_id = origin.get("id")
        if spec.get("type") in ("build", "deployment") and isinstance(origin_id, str):
            origin_driver = drivers.get(origin_id)
            if origin_driver is not None and origin_driver != driver:
                issues.append(
                    Issue(
                        path,
                        f"'{target_id}' uses the {driver} driver but '{origin_id}' uses {origin_driver}:"
                        " a release moves artifacts within one driver",
                    )
                )
    return issues


def _check_resource(resource: str, value: str, parent: Mapping[str, Any], scope: StageScope) -> str | None:
    stage = scope.stage
    if resource == SERVICE:
        return None if value in scope.services else f"no service '{value}' in stage {stage}"
    if resource == JOB:
        return None if value in scope.jobs else f"no job '{value}' in stage {stage}"
    if resource == ADDON:
        return None if value in scope.addons else f"no addon '{value}' in stage {stage}"
    if resource == BUILD_SERVICE:
        if "/" in value:  # ``project/build-service`` names another project: resolved at run time
            return None
        return None if value in scope.build_services else f"no build service '{value}' in this project"
    if resource == BUILD_OBJECT:
        if parent.get("type") == "job":
            return None if value in scope.jobs else f"no job '{value}' in stage {stage}"
        return None if value in scope.build_services else f"no build service '{value}' in this project"
    if resource == TARGET:
        return _typed(value, parent.get("type"), scope.services, scope.jobs, f"stage {stage}")
    if resource == PROMOTE_ORIGIN:
        if scope.previous_stage is None:
            return f"stage {stage} is the first stage: there is no previous stage to promote from"
        return _typed(
            value,
            parent.get("type"),
            scope.previous_services,
            scope.previous_jobs,
            f"the previous stage {scope.previous_stage}",
        )
    raise AssertionError(f"unknown resource tag {resource!r}")  # a mistake in template_format


def _typed(
    value: str, kind: object, services: frozenset[str], jobs: frozenset[str], where: str
) -> str | None:
    """A service-or-job id whose sibling ``type`` says which (it may be an expression)."""
    if value not in services and value not in jobs:
        return f"no service or job '{value}' in {where}"
    if kind == "service" and value not in services:
        return f"'{value}' is a job in {where}, not a service"
    if kind == "job" and value not in jobs:
        return f"'{value}' is a service in {where}, not a job"
    return None


# ---------------------------------------------------------------------------------------------------
# References between nodes


def check_refs(template: Template) -> list[Issue]:
    """Every ``${refs.X}`` names a node that is certain to have finished when the reader starts.

    A node may read the output of a node when, at their lowest common ancestor, that ancestor is a
    sequential workflow and the referenced node's branch comes first. Trigger refs (the pushed branch,
    sha and repoUrl) are available from the start. Cycles are reported as such, once.
    """
    by_ref = template.by_ref()
    trigger_refs = {trigger["ref"] for trigger in template.triggers if isinstance(trigger.get("ref"), str)}
    ancestry = _ancestry(template.root)
    issues: list[Issue] = []
    edges: dict[str, list[tuple[str, str]]] = {}  # reader ref -> [(referenced ref, expression path)]
    pending: list[tuple[Node, Node, str, str]] = []  # (reader, referenced, ref, path) for order checks
    for node in template.nodes():
        for path, ref in _refs_read_by(node):
            if ref in trigger_refs and ref not in by_ref:
                continue
            target = by_ref.get(ref)
            if target is None:
                issues.append(Issue(path, f"no node or trigger has ref '{ref}'"))
                continue
            if target is node:
                issues.append(Issue(path, f"node '{ref}' cannot reference itself"))
                continue
            if node.ref is not None:
                edges.setdefault(node.ref, []).append((ref, path))
            pending.append((node, target, ref, path))
    issues.extend(check_trigger_refs(template.document.get("spec"), template.triggers, by_ref))
    cycles = _cycles(edges, [node.ref for node in template.nodes() if node.ref])
    # Within a cycle some reference necessarily points forward; the cycle says it better than each.
    group = {ref: number for number, cycle in enumerate(cycles) for ref in cycle[1]}
    for walk, _ in cycles:
        issues.append(Issue(by_ref[walk[0]].path, "cycle of refs: " + " -> ".join(walk)))
    for reader, target, ref, path in pending:
        if reader.ref in group and group[reader.ref] == group.get(ref):
            continue
        message = _order_problem(reader, target, ref, ancestry)
        if message is not None:
            issues.append(Issue(path, message))
    return issues


def _refs_read_by(node: Node) -> Iterator[tuple[str, str]]:
    """(JSON path of the string, ref) for every ``${refs.X}`` in the node's own fields.

    A workflow's steps are nodes of their own; the workflow itself reads only its other fields.
    """
    for key, value in node.document.items():
        if key == "spec" and node.is_workflow and isinstance(value, Mapping):
            for spec_key, spec_value in value.items():
                if spec_key != "steps":
                    yield from _strings_with_refs(
                        spec_value, join_path(join_path(node.path, "spec"), spec_key)
                    )
        else:
            yield from _strings_with_refs(value, join_path(node.path, key))


def _strings_with_refs(value: object, path: str) -> Iterator[tuple[str, str]]:
    stack: list[tuple[object, str]] = [(value, path)]
    found: list[tuple[str, str]] = []
    while stack:
        item, item_path = stack.pop()
        if is_expression(item):
            found.extend((item_path, ref) for ref in sorted(referenced_refs(item)))
        elif isinstance(item, Mapping):
            stack.extend((child, join_path(item_path, key)) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, f"{item_path}[{index}]") for index, child in enumerate(item))
    # Document order reads better than stack order in error lists.
    yield from sorted(found, key=lambda pair: _path_key(pair[0]))


def _path_key(path: str) -> list[object]:
    parts: list[object] = []
    for piece in path.replace("]", "").replace("[", ".#").split("."):
        parts.append(
            (0, int(piece[1:]), "") if piece.startswith("#") and piece[1:].isdigit() else (1, 0, piece)
        )
    return parts


def _ancestry(root: Node) -> dict[str, tuple[tuple[Node, int], ...]]:
    """For each node path: the chain of (ancestor workflow, index of the branch taken) from the root."""
    chains: dict[str, tuple[tuple[Node, int], ...]] = {root.path: ()}
    stack = [root]
    while stack:
        node = stack.pop()
        for index, child in enumerate(node.children):
            chains[child.path] = (*chains[node.path], (node, index))
            stack.append(child)
    return chains


def _order_problem(
    reader: Node, target: Node, ref: str, ancestry: Mapping[str, tuple[tuple[Node, int], ...]]
) -> str | None:
    reader_chain = ancestry[reader.path]
    target_chain = ancestry[target.path]
    if any(ancestor is target for ancestor, _ in reader_chain):
        return f"node '{ref}' contains this node: its output is not ready until this node has finished"
    if any(ancestor is reader for ancestor, _ in target_chain):
        return f"node '{ref}' is inside this workflow: it has not run when this workflow starts"
    for (ancestor, reader_index), (other, target_index) in zip(reader_chain, target_chain, strict=False):
        if ancestor is not other:
            break
        if reader_index == target_index:
            continue
        # ``ancestor`` is the lowest common ancestor; the two nodes are in different branches of it.
        if ancestor.workflow_type is WorkflowType.PARALLEL:
            return (
                f"node '{ref}' runs in parallel with this node (both under {ancestor.path}):"
                " it is not certain to have finished"
            )
        if target_index > reader_index:
            return f"node '{ref}' runs after this node (in sequential workflow {ancestor.path})"
        return None
    raise AssertionError("two distinct nodes of one tree always part ways")


def _cycles(edges: Mapping[str, list[tuple[str, str]]], order: list[str]) -> list[tuple[list[str], set[str]]]:
    """One cycle per strongly connected group of refs: (walk ``a, b, ..., a``, the group's refs)."""
    index_of = {ref: position for position, ref in enumerate(order)}
    graph = {
        reader: sorted({ref for ref, _ in targets}, key=index_of.__getitem__)
        for reader, targets in edges.items()
    }
    components = _strongly_connected(graph, order)
    cycles = []
    for component in components:
        if len(component) < 2:
            continue
        members = set(component)
        start = min(component, key=index_of.__getitem__)
        cycles.append((_path_back(graph, start, members), members))
    return sorted(cycles, key=lambda cycle: index_of[cycle[0][0]])


def _path_back(graph: Mapping[str, list[str]], start: str, members: set[str]) -> list[str]:
    """A shortest walk start -> ... -> start inside one strongly connected component (BFS)."""
    previous: dict[str, str] = {}
    queue = [start]
    for current in queue:
        for following in graph.get(current, []):
            if following not in members:
                continue
            if following == start:
                walk = [start]
                while current != start:
                    walk.append(current)
                    current = previous[current]
                walk.append(start)
                return [walk[0], *reversed(walk[1:-1]), start]
            if following not in previous:
                previous[following] = current
                queue.append(following)
    raise AssertionError("a strongly connected component has a cycle through each member")


def _strongly_connected(graph: Mapping[str, list[str]], order: list[str]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a template may hold 2,000 nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in order:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            vertex, position = work.pop()
            if position == 0:
                index[vertex] = low[vertex] = counter
                counter += 1
                stack.append(vertex)
                on_stack.add(vertex)
            successors = graph.get(vertex, [])
            if position < len(successors):
                work.append((vertex, position + 1))
                successor = successors[position]
                if successor not in index:
                    work.append((successor, 0))
                elif successor in on_stack:
                    low[vertex] = min(low[vertex], index[successor])
                continue
            if low[vertex] == index[vertex]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == vertex:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[vertex])
    return components

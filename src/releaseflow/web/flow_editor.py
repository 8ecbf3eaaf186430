"""What the release flow editor shows beside the text: the drawing of a template (also of one that does
not validate yet, so the drawing follows the typing), which node each problem belongs to, the text in
JSON or YAML, and the node a person adds in the visual mode, per kind.

The validator itself is the engine's (``release_flows.check_release_flow``); nothing here decides
whether a template is valid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from releaseflow.domain.documents import load_document
from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.template import API_VERSION
from releaseflow.domain.template_fields import index_path, join_path

FORMATS = ("json", "yaml")
NODE_SKELETON_WORKFLOW: Mapping[str, Any] = {"kind": "Workflow", "spec": {"type": "sequential", "steps": []}}

# What the editor starts from on a stage that has no release flow yet.
NEW_FLOW: Mapping[str, Any] = {"apiVersion": API_VERSION, "spec": NODE_SKELETON_WORKFLOW}

# What "add a node" inserts, per kind: the fields the format requires, with placeholders where only the
# person knows the answer (a resource of the stage); the inline errors then say what to fill in.
NODE_SKELETONS: Mapping[str, Mapping[str, Any]] = {
    "Workflow": NODE_SKELETON_WORKFLOW,
    "Release": {
        "kind": "Release",
        "spec": {
            "type": "build",
            "origin": {"id": "BUILD-SERVICE", "branch": "main", "build": "latest"},
            "target": {"id": "SERVICE", "type": "service"},
        },
    },
    "Build": {"kind": "Build", "spec": {"id": "BUILD-SERVICE", "type": "service", "branch": "main"}},
    "JobRun": {"kind": "JobRun", "spec": {"jobId": "JOB"}},
    "AddonBackup": {"kind": "AddonBackup", "spec": {"addonId": "ADDON", "backupType": "dump"}},
    "Action": {
        "kind": "Action",
        "spec": {
            "kind": "Service",
            "spec": {"type": "restart", "data": {"serviceId": "SERVICE"}, "condition": "running"},
        },
    },
    "Condition": {
        "kind": "Condition",
        "spec": {"kind": "Service", "spec": {"type": "running", "data": {"serviceId": "SERVICE"}}},
    },
    "Message": {
        "kind": "Message",
        "spec": {
            "kind": "RAW_WEBHOOK",
            "spec": {"webhookUrl": "https://example.invalid/hook", "message": "released"},
        },
    },
    "Approval": {"kind": "Approval", "spec": {"amount": 1}},
}


@dataclass(frozen=True)
class DrawnNode:
    """A node of a template as the drawing shows it (``_tree.html``, without a run's statuses)."""

    path: str
    label: str  # its ref, else its path (as a run's node is labelled)
    kind: str
    is_workflow: bool
    workflow_type: str | None
    problems: tuple[Issue, ...]
    children: tuple[DrawnNode, ...] = ()


@dataclass(frozen=True)
class Checked:
    """One look at the editor's text: the document it holds (None: the text does not parse), every
    problem with its JSON path (and the line of the text its path leads to), and the drawing of what
    could be read."""

    document: Any
    issues: tuple[Issue, ...]
    drawing: DrawnNode | None
    lines: Mapping[Issue, int] = field(default_factory=dict)

    def renderings(self) -> dict[str, str]:
        """The document in each format (empty when the text does not parse)."""
        if self.document is None:
            return {}
        return {"json": as_json(self.document), "yaml": as_yaml(self.document)}


def read_text(text: str) -> tuple[Any, tuple[Issue, ...]]:
    """The document the editor's text holds (JSON or YAML, told apart as ``validate`` does), or None
    with the syntax problem (its line and column)."""
    try:
        return load_document(text, source="the template"), ()
    except ValidationError as error:
        return None, error.issues


def checked(document: Any, problem: ValidationError | None, text: str = "") -> Checked:
    """The document with the validator's problems, each attached to the node it is in and to the line
    of ``text`` (the text ``document`` was read from) its path leads to."""
    issues = problem.issues if problem else ()
    lines = issue_lines(text, issues) if document is not None and issues else {}
    root = document.get("spec") if isinstance(document, Mapping) else None
    if not isinstance(root, Mapping):
        return Checked(document, issues, None, lines)
    drawing = draw(root, "spec", owners(issues, set(node_paths(root, "spec"))))
    return Checked(document, issues, drawing, lines)


# One step of a JSON path as ``join_path`` and ``index_path`` write them: ``key``, ``.key``,
# ``["odd key"]`` or ``[3]``.
_STEP = re.compile(r'\.?([A-Za-z_$][A-Za-z0-9_$-]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def issue_lines(text: str, issues: Sequence[Issue]) -> dict[Issue, int]:
    """Per problem, the line (1-based) of the deepest part of ``text`` its path leads to: the value
    itself, or the object that lacks a required field. The text was already read as a document (so
    it is no alias bomb); JSON is read as YAML here, which keeps the lines of both."""
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return {}
    if root is None:
        return {}
    return {issue: _deepest(root, issue.path).start_mark.line + 1 for issue in issues}


def _deepest(node: yaml.Node, path: str) -> yaml.Node:
    for step in _STEP.finditer(path):
        key, index, quoted = step.groups()
        if index is not None and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
            continue
        wanted = key if key is not None else quoted
        if wanted is None or not isinstance(node, yaml.MappingNode):
            break
        found = next((value for name, value in node.value if name.value == wanted), None)
        if found is None:
            break
        node = found
    return node


def node_paths(node: Mapping[str, Any], path: str) -> Iterator[str]:
    """The path of ``node`` and of every node below it, read as leniently as ``draw`` reads them."""
    yield path
    for child_path, child in _steps(node, path):
        yield from node_paths(child, child_path)


def owners(issues: Sequence[Issue], paths: set[str]) -> dict[str, tuple[Issue, ...]]:
    """Each problem under the deepest node whose path holds the problem's path (``spec.spec.steps[1]``
    holds ``spec.spec.steps[1].ref`` but not ``spec.spec.steps[10]``): one look per prefix of the
    problem's path, so a template with a problem in each of its thousand nodes stays quick."""
    owned: dict[str, list[Issue]] = {}
    for issue in issues:
        cuts = [index for index, char in enumerate(issue.path) if char in ".["] + [len(issue.path)]
        prefixes = (issue.path[:cut] for cut in reversed(cuts))
        owner = next((prefix for prefix in prefixes if prefix in paths), None)
        if owner is not None:
            owned.setdefault(owner, []).append(issue)
    return {path: tuple(found) for path, found in owned.items()}


def draw(node: Mapping[str, Any], path: str, owned: Mapping[str, tuple[Issue, ...]]) -> DrawnNode:
    """The drawing of ``node`` at ``path``, read leniently (a template being typed is often invalid):
    whatever has a list of ``steps`` is drawn as a workflow."""
    spec = node.get("spec")
    kind = node.get("kind")
    ref = node.get("ref")
    workflow_type = spec.get("type") if kind == "Workflow" and isinstance(spec, Mapping) else None
    return DrawnNode(
        path=path,
        label=ref if isinstance(ref, str) and ref else path,
        kind=kind if isinstance(kind, str) else "?",
        is_workflow=kind == "Workflow",
        workflow_type=str(workflow_type) if workflow_type is not None else None,
        problems=owned.get(path, ()),
        children=tuple(draw(child, child_path, owned) for child_path, child in _steps(node, path)),
    )


def _steps(node: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    spec = node.get("spec")
    steps = spec.get("steps") if isinstance(spec, Mapping) else None
    if not isinstance(steps, list):
        return
    steps_path = join_path(join_path(path, "spec"), "steps")
    for index, step in enumerate(steps):
        if isinstance(step, Mapping):
            yield index_path(steps_path, index), step


def as_json(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def as_yaml(document: Any) -> str:
    # Keys stay in the template's order (a node's kind before its spec), as a person wrote them.
    # libyaml's dumper when PyYAML has it: the pure Python one takes ~100 ms for a 1,000-node template.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(document, Dumper=dumper, sort_keys=False, allow_unicode=True, width=100)

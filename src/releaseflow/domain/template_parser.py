"""Structural validation of a release flow template, and building the ``Template`` model from it.

``parse_template`` reports every problem of a document at once, each with its exact JSON path
(``spec.spec.steps[2].spec.target.type: must be one of service, job``), so that a user fixes a
template in one round. The shape of the format lives in ``template_format``; this module walks a
document along it, adds the checks that span the whole document (unique refs, expression syntax,
size limits) and then builds the model. Checks that need to know the stage (which resources exist)
or the order of execution (``${refs..}``) live in ``template_rules``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from releaseflow.domain.documents import check_document_shape
from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.expressions import check_syntax
from releaseflow.domain.template import (
    API_VERSION,
    DEFAULT_BACKOFF_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    ConcurrencyPolicy,
    Node,
    NodeKind,
    RetrySettings,
    Template,
    WorkflowType,
)
from releaseflow.domain.template_fields import Obj, index_path, join_path, validate
from releaseflow.domain.template_format import (
    DOCUMENT,
    MAX_NODE_COUNT,
    MAX_TREE_DEPTH,
    NODE_KINDS,
    UNSUPPORTED_KINDS,
)

SUBJECT = "template"
_NODE_FIELDS: dict[str, Obj] = {name: kind.node_fields() for name, kind in NODE_KINDS.items()}


def parse_template(document: Any) -> Template:
    """Validate ``document`` (a JSON-like mapping) and build its ``Template``.

    Raises ``ValidationError`` listing every issue; never anything else for JSON-like input.
    """
    if not isinstance(document, Mapping):
        raise ValidationError([Issue("", "a release flow template must be a JSON object")], subject=SUBJECT)
    check_document_shape(document, subject=SUBJECT)
    issues: list[Issue] = []
    nodes = _NodeWalker()
    validate(DOCUMENT, document, "", issues, nodes)
    issues.extend(_duplicate_refs(nodes.refs, document.get("triggers")))
    if "spec" in document:
        issues.extend(check_syntax(document["spec"], "spec"))
    if isinstance(document.get("arguments"), Mapping):
        issues.extend(check_syntax(document["arguments"], "arguments"))
    if issues:
        raise ValidationError(_unique(issues), subject=SUBJECT)
    return _build_template(copy.deepcopy(dict(document)))


class _NodeWalker:
    """Validates nodes as the generic validator meets them; counts them and tracks nesting."""

    def __init__(self) -> None:
        self.depth = 0
        self.count = 0
        self.too_many_reported = False
        self.refs: list[tuple[str, str]] = []  # (ref, node path) in document order

    def validate_node(self, value: object, path: str, issues: list[Issue]) -> None:
        self.count += 1
        if self.count > MAX_NODE_COUNT:
            if not self.too_many_reported:
                self.too_many_reported = True
                issues.append(Issue(path, f"too many nodes: a template may hold at most {MAX_NODE_COUNT}"))
            return
        if self.depth >= MAX_TREE_DEPTH:
            issues.append(Issue(path, f"nodes nest too deeply: at most {MAX_TREE_DEPTH} levels of workflows"))
            return
        if not isinstance(value, Mapping):
            issues.append(Issue(path, "must be an object (a node with kind and spec)"))
            return
        kind_path = join_path(path, "kind")
        if "kind" not in value:
            issues.append(Issue(kind_path, "is required"))
            return
        kind = value["kind"]
        if not isinstance(kind, str):
            issues.append(Issue(kind_path, "must be a string"))
            return
        if kind in UNSUPPORTED_KINDS:
            issues.append(Issue(kind_path, f"node kind '{kind}' is not supported by releaseflow"))
            return
        if kind not in NODE_KINDS:
            issues.append(Issue(kind_path, f"unknown node kind '{kind}'"))
            return
        if self.depth == 0 and kind != "Workflow":
            issues.append(Issue(kind_path, "the root node must be a Workflow"))
        ref = value.get("ref")
        if isinstance(ref, str):
            self.refs.append((ref, path))
        self.depth += 1
        try:
            validate(_NODE_FIELDS[kind], value, path, issues, self)
        finally:
            self.depth -= 1


def _duplicate_refs(node_refs: list[tuple[str, str]], triggers: object) -> list[Issue]:
    """Refs name nodes and triggers in one namespace (``${refs.<ref>}``), so they must be unique."""
    owners: list[tuple[str, str]] = []
    if isinstance(triggers, list):
        for index, trigger in enumerate(triggers):
            if isinstance(trigger, Mapping) and isinstance(trigger.get("ref"), str):
                owners.append((trigger["ref"], index_path("triggers", index)))
    owners.extend(node_refs)
    first: dict[str, str] = {}
    issues = []
    for ref, path in owners:
        if ref in first:
            issues.append(Issue(join_path(path, "ref"), f"ref '{ref}' is already used by {first[ref]}"))
        else:
            first[ref] = path
    return issues


def _unique(issues: list[Issue]) -> list[Issue]:
    return list(dict.fromkeys(issues))


# ---------------------------------------------------------------------------------------------------
# Building the model from a valid document


def _build_template(document: dict[str, Any]) -> Template:
    options = document.get("options") or {}
    return Template(
        document=document,
        root=_build_node(document["spec"], "spec"),
        arguments=document.get("arguments", {}),
        secret_arguments=tuple(key for key in document.get("secretArguments", ()) if isinstance(key, str)),
        triggers=tuple(document.get("triggers", ())),
        concurrency_policy=ConcurrencyPolicy(options.get("concurrencyPolicy", ConcurrencyPolicy.ALLOW)),
        paused=bool(options.get("paused", False)),
        rich_inputs=tuple(document.get("richInputs", ())),
        api_version=document.get("apiVersion", API_VERSION),
    )


def _build_node(document: Mapping[str, Any], path: str) -> Node:
    kind: str = document["kind"]
    spec: Mapping[str, Any] = document["spec"]
    children: tuple[Node, ...] = ()
    workflow_type = None
    if kind == "Workflow":
        workflow_type = WorkflowType(spec["type"])
        steps_path = join_path(join_path(path, "spec"), "steps")
        children = tuple(
            _build_node(step, index_path(steps_path, index)) for index, step in enumerate(spec["steps"])
        )
    condition = document.get("condition")
    timeout = document.get("timeoutDuration")
    if kind in ("Action", "Condition"):
        # Actions and conditions carry their wait inside their own spec; the engine reads one place.
        inner = spec["spec"]
        if isinstance(inner, Mapping):
            condition = condition if condition is not None else inner.get("condition")
            data = inner.get("data")
            if timeout is None and isinstance(data, Mapping):
                timeout = data.get("timeoutDuration")
    return Node(
        path=path,
        kind=NodeKind(kind),
        document=document,
        ref=document.get("ref"),
        children=children,
        workflow_type=workflow_type,
        condition=condition,
        timeout_duration=timeout,
        skip_node_execution=_skip(document.get("skipNodeExecution")),
        settings=_settings(document.get("settings")),
    )


def _skip(value: object) -> bool | str | None:
    if value == "true":
        return True
    if value == "false":
        return False
    if isinstance(value, bool | str):
        return value
    return None


def _settings(value: object) -> RetrySettings:
    if not isinstance(value, Mapping):
        return RetrySettings()
    max_attempts = value.get("maxAttempts", DEFAULT_MAX_ATTEMPTS)
    backoff = value.get("backoff")
    delay = (
        backoff.get("delay", DEFAULT_BACKOFF_SECONDS)
        if isinstance(backoff, Mapping)
        else DEFAULT_BACKOFF_SECONDS
    )
    return RetrySettings(
        max_attempts=max_attempts,
        backoff_seconds=delay if isinstance(delay, str) else float(delay),
    )

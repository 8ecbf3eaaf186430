"""The release flow template model: what ``parse_template`` (``template_parser``) produces.

A template is a tree. Each node is identified inside a template (and inside every run of it) by its
JSON path in the document, e.g. ``spec`` for the root workflow or ``spec.spec.steps[2]`` for the third
step of the root. Paths are what validation errors name and what node runs are keyed by.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

API_VERSION = "v1.2"


class NodeKind(StrEnum):
    """The kinds of node releaseflow runs. Who runs each: ``engine/executors`` (the registry)."""

    WORKFLOW = "Workflow"
    RELEASE = "Release"
    BUILD = "Build"
    JOB_RUN = "JobRun"
    ADDON_BACKUP = "AddonBackup"
    ACTION = "Action"
    CONDITION = "Condition"
    MESSAGE = "Message"
    APPROVAL = "Approval"


SUPPORTED_NODE_KINDS = tuple(str(kind) for kind in NodeKind)
# Kinds of the Northflank format that releaseflow recognises but does not execute (yet): refused by name.
UNSUPPORTED_NODE_KINDS = (
    "LoopWorkflow",
    "LoopData",
    "RunTemplate",
    "AddonImport",
    "SecretInheritance",
    "RolloutStrategy",
)

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF_SECONDS = 10.0


class ConcurrencyPolicy(StrEnum):
    # Runs execute side by side without restriction (the default).
    ALLOW = "allow"
    # New runs wait, first in first out, until no run of the flow is active.
    QUEUE = "queue"
    # A new run is refused while another run of the flow is active.
    FORBID = "forbid"
    # Like queue, but only the newest waiting run is kept; older waiting runs are aborted.
    LATEST = "latest"
    # Active runs are aborted and the new run starts once they have stopped.
    REPLACE = "replace"


class WorkflowType(StrEnum):
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


@dataclass(frozen=True)
class RetrySettings:
    """``settings`` of a node. Fields hold ints/floats, or ``${...}`` strings resolved at run time."""

    max_attempts: int | str = DEFAULT_MAX_ATTEMPTS
    backoff_seconds: float | str = DEFAULT_BACKOFF_SECONDS


@dataclass(frozen=True)
class Node:
    """One node of the tree (a workflow is a node too)."""

    path: str
    kind: NodeKind
    document: Mapping[str, Any]  # the node's JSON as written (for a workflow, steps included)
    ref: str | None = None
    children: tuple[Node, ...] = ()
    workflow_type: WorkflowType | None = None  # set for kind Workflow only
    condition: str | None = None  # "success" / "running": wait for completion
    timeout_duration: int | str | None = None  # seconds, or a ${...} expression
    skip_node_execution: bool | str | None = None  # True/False, or a ${...} expression
    settings: RetrySettings = field(default_factory=RetrySettings)

    @property
    def is_workflow(self) -> bool:
        return self.kind is NodeKind.WORKFLOW

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.document.get("spec", {})
        return spec if isinstance(spec, Mapping) else {}

    def walk(self) -> Iterator[Node]:
        """This node and every node below it, depth first, in document order."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class Template:
    """A parsed, structurally valid release flow template."""

    document: Mapping[str, Any]
    root: Node
    arguments: Mapping[str, Any] = field(default_factory=dict)
    # Keys of arguments stored encrypted and shown masked (releaseflow's ``secretArguments``).
    secret_arguments: tuple[str, ...] = ()
    triggers: tuple[Mapping[str, Any], ...] = ()
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW
    paused: bool = False
    rich_inputs: tuple[Mapping[str, Any], ...] = ()
    api_version: str = API_VERSION

    def nodes(self) -> Iterator[Node]:
        return self.root.walk()

    def node(self, path: str) -> Node:
        return self._by_path[path]

    @cached_property
    def _by_path(self) -> dict[str, Node]:
        # A template never changes once parsed; the engine looks nodes up by path on every step.
        return {node.path: node for node in self.nodes()}

    @cached_property
    def has_skip_expressions(self) -> bool:
        """Whether any node's skipNodeExecution is set to something other than false."""
        return any(node.skip_node_execution not in (None, False) for node in self.nodes())

    def by_ref(self) -> dict[str, Node]:
        return {node.ref: node for node in self.nodes() if node.ref}

    def parents(self) -> dict[str, Node]:
        """Map from a node's path to its parent workflow."""
        return self._parents

    @cached_property
    def _parents(self) -> dict[str, Node]:
        return {child.path: node for node in self.nodes() for child in node.children}

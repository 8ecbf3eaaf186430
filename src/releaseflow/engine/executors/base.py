"""What a node executor is, what it is given, and what it answers.

An executor performs the action of one node kind. ``start`` runs once per attempt; when it answers
``Waiting`` the node is parked (status waiting) and ``poll`` is called later — never a held thread.
Executors never touch the store or change statuses: the worker does that with their answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from releaseflow.domain.template import NodeKind
from releaseflow.platform.driver import Artifact, Resource


@dataclass(frozen=True)
class Succeeded:
    data: Any = None


@dataclass(frozen=True)
class Failed:
    message: str
    # False when another attempt cannot help (bad input, missing resource): no retry then.
    retryable: bool = True
    code: int = 500
    data: Any = None


@dataclass(frozen=True)
class Waiting:
    """Accepted, not finished: poll again after ``poll_after`` seconds with ``state``."""

    state: Any
    poll_after: float = 2.0
    data: Any = None


Outcome = Succeeded | Failed | Waiting


@dataclass(frozen=True)
class ExecutionContext:
    run_id: str
    node_path: str
    kind: NodeKind
    ref: str | None
    code: Mapping[str, Any]  # the node's JSON with every expression resolved
    attempt: int
    max_attempts: int
    idempotency_key: str  # the same for every call of one attempt; drivers pass it on
    now: datetime
    wait_state: Any = None
    project_id: str = ""
    stage: str = ""
    resources: Mapping[str, Resource] = field(default_factory=dict)  # the project's resources by id
    stage_resources: frozenset[str] = frozenset()  # ids of the services, jobs and addons of the stage
    # What release state says each of the project's services and jobs runs now, by resource id.
    deployed: Mapping[str, Artifact] = field(default_factory=dict)
    # True when this call re-runs an attempt whose worker was lost (same attempt, same key): what
    # that attempt started on the platform may be under way already and must be adopted, not redone.
    resumed: bool = False

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.code.get("spec", {})
        return spec if isinstance(spec, Mapping) else {}

    @property
    def wait_for_completion(self) -> bool:
        return self.code.get("condition") in ("success", "running")


class NodeExecutor(Protocol):
    async def start(self, context: ExecutionContext) -> Outcome: ...

    async def poll(self, context: ExecutionContext) -> Outcome: ...

    async def cancel(self, context: ExecutionContext) -> str:
        """The run was aborted while this node waited: ask the platform to stop; say what stopped."""
        ...

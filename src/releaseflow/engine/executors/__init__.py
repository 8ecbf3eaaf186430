"""The registry of who runs each node kind: here, and nowhere else, a kind is mapped to its runner.

Executors act for the kinds that do something outside the engine. Two kinds have none, by design:
workflows are advanced by the planner (``domain/progress``), and approvals are decided by people
through ``Engine.approve`` / ``Engine.reject`` (``engine/approvals``).
"""

from __future__ import annotations

from releaseflow.domain.template import NodeKind
from releaseflow.engine.executors.base import NodeExecutor
from releaseflow.engine.executors.message import MessageExecutor
from releaseflow.engine.executors.platform_nodes import PlatformExecutor
from releaseflow.platform.driver import DriverRegistry

# Kinds that act on a platform resource through its driver (they need the stage's resources).
PLATFORM_KINDS = frozenset(
    {
        NodeKind.RELEASE,
        NodeKind.BUILD,
        NodeKind.JOB_RUN,
        NodeKind.ADDON_BACKUP,
        NodeKind.ACTION,
        NodeKind.CONDITION,
    }
)
# Kinds the engine itself settles, without an executor.
ENGINE_KINDS = frozenset({NodeKind.WORKFLOW, NodeKind.APPROVAL})


def default_executors(drivers: DriverRegistry) -> dict[NodeKind, NodeExecutor]:
    """The shipped executor of every kind that has one, over ``drivers``."""
    platform = PlatformExecutor(drivers)
    executors: dict[NodeKind, NodeExecutor] = {kind: platform for kind in PLATFORM_KINDS}
    executors[NodeKind.MESSAGE] = MessageExecutor()
    return executors

"""One executor per node kind (workflows are advanced by the engine itself, not executed)."""

from __future__ import annotations

from releaseflow.engine.executors.base import NodeExecutor
from releaseflow.engine.executors.message import MessageExecutor
from releaseflow.engine.executors.platform_nodes import PlatformExecutor
from releaseflow.platform.driver import DriverRegistry

PLATFORM_KINDS = ("Release", "Build", "JobRun", "AddonBackup", "Action", "Condition")


def default_executors(drivers: DriverRegistry) -> dict[str, NodeExecutor]:
    platform = PlatformExecutor(drivers)
    executors: dict[str, NodeExecutor] = {kind: platform for kind in PLATFORM_KINDS}
    executors["Message"] = MessageExecutor()
    return executors

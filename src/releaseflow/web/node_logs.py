"""The log shown in a node's detail: a Build's build log, a JobRun's job run log, a Release's
service log — what ``releaseflow logs build|job-run|service ID`` prints, read through the engine
from the driver of the resource the node acted on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from releaseflow.application import Application
from releaseflow.domain.errors import ReleaseflowError
from releaseflow.engine.logs import read_logs
from releaseflow.engine.queries import NodeView
from releaseflow.platform.driver import LogSource
from releaseflow.store import catalog

LINES = 200


@dataclass(frozen=True)
class LogTarget:
    source: LogSource
    key: str  # the build id, job run id or service id
    resource_id: str  # whose driver keeps the log

    def command(self) -> str:
        return f"releaseflow logs {self.source.value} {self.key}"


def log_target(node: NodeView) -> LogTarget | None:
    """Which log tells what the node did (None: its kind has none, or it has not started it yet)."""
    code = node.code if isinstance(node.code, Mapping) else {}
    spec = _mapping(code.get("spec"))
    started = _mapping(node.data).get("id")
    if node.kind == "Build" and started:
        return LogTarget(LogSource.BUILD, str(started), str(spec.get("id", "")))
    if node.kind == "JobRun" and started:
        return LogTarget(LogSource.JOB_RUN, str(started), str(spec.get("jobId", "")))
    target = _mapping(spec.get("target"))
    if node.kind == "Release" and target.get("type") == "service" and target.get("id"):
        return LogTarget(LogSource.SERVICE, str(target["id"]), str(target["id"]))
    return None


@dataclass(frozen=True)
class NodeLog:
    target: LogTarget
    lines: list[str]
    problem: str | None  # why no lines could be read


async def node_log(core: Application, project_id: str, node: NodeView) -> NodeLog | None:
    """The last ``LINES`` lines of the node's log, or why they cannot be read."""
    target = log_target(node)
    if target is None:
        return None
    async with core.db.read() as tx:
        drivers = {row["id"]: row["driver"] for row in await catalog.list_resources(tx, project_id)}
    driver = drivers.get(target.resource_id)
    if driver is None:
        return NodeLog(target, [], f"project {project_id} has no resource '{target.resource_id}' any more")
    try:
        return NodeLog(
            target, await read_logs(core.drivers, driver, target.source, target.key, lines=LINES), None
        )
    except ReleaseflowError as error:  # no such log (yet), or a driver without logs: say why
        return NodeLog(target, [], str(error))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}

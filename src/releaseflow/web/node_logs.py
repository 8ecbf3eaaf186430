"""The log shown in a node's detail: a Build's build log, a JobRun's job run log, a Release's
service log: the log of the node's platform record (``engine/platform_records``), which the API's
``/records/{id}/log`` and ``releaseflow logs`` read too."""

from __future__ import annotations

from dataclasses import dataclass

from releaseflow.application import Application
from releaseflow.domain.errors import NotFoundError, ReleaseflowError
from releaseflow.engine import platform_records
from releaseflow.engine.queries import NodeView, RunSummary

LINES = 200


@dataclass(frozen=True)
class NodeLog:
    command: str  # the CLI command that prints the same log
    lines: list[str]
    problem: str | None  # why no lines could be read


async def node_log(core: Application, run: RunSummary, node: NodeView) -> NodeLog | None:
    """The last ``LINES`` lines of the node's log, or why they cannot be read; None when the node has
    no log (its kind keeps none, or it has not acted on the platform yet)."""
    acted_in = node.carried_from or run.id
    try:
        record = await platform_records.record_of_node(core.db, run.project_id, acted_in, node.path)
        source, key = platform_records.log_of(record)
    except NotFoundError:
        return None
    command = f"releaseflow logs {source.value} {key}"
    try:
        lines = await platform_records.record_log(core.db, core.drivers, record, lines=LINES)
    except ReleaseflowError as error:  # no such log (yet), a resource removed, a driver without logs
        return NodeLog(command, [], str(error))
    return NodeLog(command, lines, None)

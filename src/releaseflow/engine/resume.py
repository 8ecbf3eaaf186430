"""Resume a failed run from its failed node: what the new run keeps of the old one.

The new run runs the same release flow version as the failed one, with its arguments and overrides
(each may be edited); the failed run's secret arguments stay secret (opened here, sealed again when
the new run is written), and an edit of one of them is secret too. Every action (a node that is
not a workflow) that succeeded in the failed run is carried over: its row starts as succeeded with
the response, code and attempts it had, marked with the run it came from, and no worker ever runs
it again. Everything else starts pending, so the failed node and every node after it run again;
workflows work their status out from their steps as in any run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releaseflow.domain.errors import ConflictError, NotFoundError
from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.domain.template import Template
from releaseflow.engine.plan import RunInputs
from releaseflow.engine.templates import TemplateCache
from releaseflow.store import catalog
from releaseflow.store import runs as run_store
from releaseflow.store.database import Transaction
from releaseflow.store.records import FlowRecord, NodeRecord, RunRecord

# A resume of one of these stands for the failed run already: resume that one instead.
_BLOCKING_RESUMES = frozenset({"queued", "pending", "running", "aborting", "success"})


@dataclass(frozen=True)
class Resumption:
    """A failed run that may be resumed, its flow, and what the new run is asked to run with."""

    failed: RunRecord
    flow: FlowRecord
    arguments: dict[str, Any]
    secret_arguments: dict[str, Any]
    overrides: dict[str, Any]
    release_node_overrides: dict[str, Any]
    # The failed run's trigger values: a resume repeats the event that started it.
    trigger_refs: dict[str, Any]


async def resumption(tx: Transaction, run_id: str, edits: RunInputs, templates: TemplateCache) -> Resumption:
    """Check that ``run_id`` may be resumed; the edits are laid over what it ran with."""
    failed = await run_store.get_run(tx, run_id)
    if failed is None:
        raise NotFoundError(f"no run '{run_id}'")
    if failed.status is not RunStatus.FAILED:
        raise ConflictError(
            f"run {failed.id} is {failed.status}, not failed: only a failed run can be resumed"
            + (" (start a new run instead)" if failed.status is RunStatus.SUCCESS else "")
        )
    for other in await run_store.resumes_of(tx, failed.id):
        if other["status"] in _BLOCKING_RESUMES:
            raise ConflictError(
                f"run {failed.id} was already resumed by run {other['id']} ({other['status']})"
                + ("; resume that one if it fails" if other["status"] != "success" else "")
            )
    flow = await catalog.get_flow_by_id(tx, failed.flow_id)
    assert flow is not None
    if await catalog.flow_archived(tx, flow.id):
        raise ConflictError(
            f"the release flow of stage '{flow.stage}' of pipeline '{flow.project_id}/{flow.pipeline_id}'"
            " is archived (pruned from the configuration); declare it in the file again to resume its runs"
        )
    merged_overrides = {ref: dict(patch) for ref, patch in failed.overrides.items()}
    for ref, patch in edits.overrides.items():
        merged_overrides[ref] = {**merged_overrides.get(ref, {}), **patch}
    arguments = {**templates.arguments(failed), **edits.arguments}
    secret = set(failed.secret_arguments)
    return Resumption(
        failed=failed,
        flow=flow,
        arguments={key: value for key, value in arguments.items() if key not in secret},
        secret_arguments={
            **{key: value for key, value in arguments.items() if key in secret},
            **edits.secret_arguments,
        },
        overrides=merged_overrides,
        release_node_overrides={**failed.release_node_overrides, **edits.release_node_overrides},
        trigger_refs=dict(failed.trigger_refs),
    )


async def carried_nodes(tx: Transaction, failed: RunRecord, template: Template) -> dict[str, NodeRecord]:
    """The actions of the failed run that succeeded and that the new run's template still has, by path."""
    kinds = {node.path: node.kind for node in template.nodes() if not node.is_workflow}
    return {
        node.path: node
        for node in await run_store.load_nodes(tx, failed.id)
        if node.status is NodeStatus.SUCCESS and kinds.get(node.path) is node.kind
    }


def carried_fields(node: NodeRecord) -> dict[str, Any]:
    """The columns of a new node row that carries ``node`` over (it does not run again)."""
    source = node.carried_from or node.run_id
    return {
        "status": str(NodeStatus.SUCCESS),
        "attempt": node.attempt,
        "max_attempts": node.max_attempts,
        "started_at": node.started_at,
        "ended_at": node.ended_at,
        "code": node.code,
        "data": node.data,
        "attempts": node.attempts,
        "backoff_seconds": node.backoff_seconds,
        "timeout_seconds": node.timeout_seconds,
        "cause": carried_cause(source),
        "carried_from": source,
    }


def carried_cause(source: str) -> str:
    return f"carried over from run {source}: it succeeded there and is not run again"

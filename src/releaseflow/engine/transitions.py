"""The one place where run and node statuses change.

Each transition is checked against the table in ``releaseflow.domain.statuses``, written together
with its event row in the caller's transaction, and guarded by the status the caller saw: if another
writer got there first, nothing is written and ``ConflictError`` is raised.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from releaseflow.domain.errors import ConflictError, StaleLeaseError
from releaseflow.domain.notifications import event_of
from releaseflow.domain.statuses import (
    TERMINAL_NODE_STATUSES,
    TERMINAL_RUN_STATUSES,
    NodeStatus,
    RunStatus,
    node_transition_allowed,
    run_transition_allowed,
)
from releaseflow.store import history
from releaseflow.store import notifications as notification_store
from releaseflow.store import runs as run_store
from releaseflow.store.database import Transaction
from releaseflow.store.records import NodeRecord


async def transition_run(
    tx: Transaction,
    run_id: str,
    current: RunStatus,
    new: RunStatus,
    cause: str,
    now: datetime,
    **fields: Any,
) -> None:
    if not run_transition_allowed(current, new):
        raise ConflictError(f"run {run_id} cannot go from {current} to {new}")
    values: dict[str, Any] = {"status": str(new), "updated_at": now, **fields}
    if new is RunStatus.RUNNING:
        values.setdefault("started_at", now)
    if new in TERMINAL_RUN_STATUSES:
        values.setdefault("concluded_at", now)
        values.setdefault("waiting_reason", None)
    if new is RunStatus.PENDING:
        values.setdefault("waiting_reason", None)
    if not await run_store.update_run(tx, run_id, current, values):
        raise ConflictError(f"run {run_id} is no longer {current}")
    run_store.append_event(tx, run_id, None, now, str(current), str(new), cause)
    # Subscribers hear of it through the outbox, written with the change: a crash loses no event.
    event = event_of("release", str(new))
    notification_store.enqueue(tx, run_id, str(event), str(current), str(new), cause, now)
    if new in TERMINAL_RUN_STATUSES:
        # What the stage runs right after this run, kept with it: what a rollback to it restores.
        await history.snapshot_stage_state(tx, run_id)


class NodeRef(Protocol):
    """What identifies a node run and the status its caller saw."""

    @property
    def run_id(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def status(self) -> NodeStatus: ...


async def transition_node(
    tx: Transaction,
    node: NodeRef,
    new: NodeStatus,
    cause: str,
    now: datetime,
    **fields: Any,
) -> None:
    current, run_id, path = node.status, node.run_id, node.path
    if not node_transition_allowed(current, new):
        raise ConflictError(f"node {path} of run {run_id} cannot go from {current} to {new}")
    # A cause quotes what a platform answered, which may hold a NUL: PostgreSQL's text refuses it,
    # and a refused write would leave the node where it was. Written visibly instead.
    cause = cause.replace("\x00", "\\x00")
    values: dict[str, Any] = {"status": str(new), "cause": cause, **fields}
    if new is NodeStatus.RUNNING and current is NodeStatus.PENDING:
        values.setdefault("started_at", now)
    if new in TERMINAL_NODE_STATUSES:
        values.setdefault("ended_at", now)
        # A finished node is nobody's work any more.
        values.update(due_at=None, lease_owner=None, lease_expires_at=None, next_attempt_at=None)
    await update_fenced(tx, node, values)
    run_store.append_event(tx, run_id, path, now, str(current), str(new), cause)


def lease_of(node: NodeRef) -> tuple[str, int] | None:
    """The lease a node was read under (owner, fencing token); None for a node nobody holds."""
    if isinstance(node, NodeRecord) and node.lease_owner is not None:
        return node.lease_owner, node.lease_token
    return None


async def update_fenced(tx: Transaction, node: NodeRef, fields: dict[str, Any]) -> None:
    """Write a node's fields if it still has the status — and the lease — it was read with.

    The fence replaces a read before the write: a worker whose lease was taken over (reaped, then
    claimed again) writes nothing and gets StaleLeaseError.
    """
    lease = lease_of(node)
    if await run_store.update_node(tx, node.id, str(node.status), fields, lease=lease):
        return
    if lease is not None:
        raise StaleLeaseError(
            f"node {node.path} of run {node.run_id}: lease {lease[1]} of worker {lease[0]} is no longer"
            f" valid (or the node is no longer {node.status}); nothing was written"
        )
    raise ConflictError(f"node {node.path} of run {node.run_id} is no longer {node.status}")

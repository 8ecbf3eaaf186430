"""Approval nodes: decided by people, in the transaction of their command, never by a worker.

When an Approval node begins it parks in ``waiting`` with no poll and no lease: nothing runs while it
waits. ``approve`` and ``reject`` (``Engine.approve`` / ``Engine.reject``) change it in the caller's
own transaction. The node waits until enough distinct people approved (it succeeds), someone
rejected it (it fails with their reason), or its own explicit ``timeoutDuration`` passes (it fails,
expired). Whoever started the run may not decide on it (four eyes), and an Approval that names
its ``approvers`` (releaseflow's own field) is decided by those people only. Without an explicit
``timeoutDuration`` it waits for ever: the default wait timeout and the retry policy do not apply to
a decision only a person can make.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from releaseflow.domain.errors import ConflictError, ForbiddenError
from releaseflow.domain.statuses import NodeStatus
from releaseflow.engine.outcomes import fail_for_good, finish_attempt
from releaseflow.engine.transitions import transition_node, update_fenced
from releaseflow.store import runs as run_store
from releaseflow.store.database import Transaction
from releaseflow.store.records import NodeRecord

APPROVED = "approved"
REJECTED = "rejected"
# The code a rejection or an expiry reports as the node's error (the request was refused).
REFUSED_CODE = 403

_NO_LEASE: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}


def required_approvals(code: Any) -> int:
    amount = _spec(code).get("amount", 1)
    return amount if isinstance(amount, int) and not isinstance(amount, bool) and amount > 0 else 1


def named_approvers(code: Any) -> tuple[str, ...]:
    """The people the template names as approvers; empty: anyone but the run's starter."""
    approvers = _spec(code).get("approvers")
    if not isinstance(approvers, list | tuple):
        return ()
    return tuple(name for name in approvers if isinstance(name, str) and name)


# Origins whose ``by`` is a person (or their token, or who asked for a rollback): they may not
# decide on the run they started.
_PERSONAL_ORIGINS = frozenset({"person", "token", "rollback"})


def starter_of(origin_kind: str, origin_by: str) -> str:
    """Who started a run, as far as approvals care; empty for triggers (a push, a webhook). A token's
    run names the token as its actions are recorded (``token:NAME``), so it cannot approve its own run."""
    if origin_kind == "token":
        return f"token:{origin_by}"
    return origin_by if origin_kind in _PERSONAL_ORIGINS else ""


def may_decide(code: Any, started_by: str, person: str) -> str | None:
    """Why ``person`` may not decide on this approval, or None when they may."""
    if started_by and person == started_by:
        return f"{person} started this run and cannot approve or reject it (someone else must)"
    approvers = named_approvers(code)
    if approvers and person not in approvers:
        return f"{person} is not an approver of this node (approvers: {', '.join(approvers)})"
    return None


def _spec(code: Any) -> Mapping[str, Any]:
    spec = code.get("spec") if isinstance(code, Mapping) else None
    return spec if isinstance(spec, Mapping) else {}


async def await_decision(tx: Transaction, node: NodeRecord, now: datetime) -> None:
    """A just-started Approval node (running, leased by its starter) parks until a person decides."""
    required = required_approvals(node.code)
    expiry = node.timeout_seconds  # its own timeoutDuration, resolved when it began; None: never
    deadline = now + timedelta(seconds=expiry) if expiry is not None else None
    until = f"until {deadline.isoformat()}" if deadline is not None else "with no expiry"
    await transition_node(
        tx,
        node,
        NodeStatus.WAITING,
        f"awaiting {required} approval(s), {until}",
        now,
        data={"required": required, "approvals": [], "decisions": []},
        wait_state=None,
        wait_deadline=deadline,
        # Only the expiry makes it due: nothing polls a decision that only a person can make.
        due_at=deadline,
        became_due_at=deadline,
        **_NO_LEASE,
    )


async def decide(
    tx: Transaction,
    node: NodeRecord,
    *,
    approve: bool,
    by: str,
    comment: str,
    now: datetime,
    started_by: str = "",
) -> None:
    """Record one person's decision on a waiting Approval node (the caller holds the run's lock).

    ``started_by``: the person (or token) who started the run, who may not decide on it.
    """
    refusal = may_decide(node.code, started_by, by)
    if refusal is not None:
        raise ForbiddenError(refusal)
    data = dict(node.data) if isinstance(node.data, Mapping) else {}
    required = int(data.get("required") or required_approvals(node.code))
    approvals = list(data.get("approvals", []))
    decisions = list(data.get("decisions", []))
    if by in approvals:
        raise ConflictError(f"{by} already approved {node.ref or node.path}")
    decision = {
        "decision": APPROVED if approve else REJECTED,
        "by": by,
        "at": now.isoformat(),
        "comment": comment,
    }
    decisions.append(decision)
    if approve:
        approvals.append(by)
    data.update(required=required, approvals=approvals, decisions=decisions)
    said = f": {comment}" if comment else ""
    if not approve:
        await _refuse(tx, node, f"rejected by {by}{said}", now, data=data)
        return
    if len(approvals) >= required:
        await transition_node(
            tx,
            node,
            NodeStatus.SUCCESS,
            f"approved by {by}{said} ({len(approvals)} of {required})",
            now,
            data=data,
            error=None,
            attempts=finish_attempt(node, now, status="success"),
        )
        return
    if not await run_store.update_node(tx, node.id, str(NodeStatus.WAITING), {"data": data}):
        raise ConflictError(f"node {node.ref or node.path} is no longer waiting")
    run_store.append_event(
        tx,
        node.run_id,
        node.path,
        now,
        str(NodeStatus.WAITING),
        str(NodeStatus.WAITING),
        f"approved by {by}{said} ({len(approvals)} of {required})",
    )


async def expire(tx: Transaction, node: NodeRecord, now: datetime) -> None:
    """A waiting Approval node was claimed at its expiry: fail it, unless it is not due yet."""
    deadline = node.wait_deadline
    if deadline is None or now < deadline:
        # Made due early (it should not be): park it again until its expiry.
        await update_fenced(tx, node, {"due_at": deadline, "became_due_at": deadline, **_NO_LEASE})
        return
    await _refuse(tx, node, f"expired: no decision by {deadline.isoformat()} (its timeoutDuration)", now)


async def _refuse(tx: Transaction, node: NodeRecord, message: str, now: datetime, **fields: Any) -> None:
    """The approval ends failed (rejected or expired): never retried, as no attempt could change it."""
    error = {"code": REFUSED_CODE, "message": message}
    attempts = finish_attempt(node, now, status="failed", error=error)
    await fail_for_good(tx, node, error, now, attempts=attempts, **fields)

"""What an executor's answer does to a node: success, another attempt, failure, waiting, aborted.

Used by the worker for answers it receives and by the reaper for attempts whose worker vanished.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from releaseflow.domain.retry import decide_retry
from releaseflow.domain.statuses import NodeStatus
from releaseflow.domain.template import DEFAULT_BACKOFF_SECONDS
from releaseflow.engine.executors.base import Failed, Outcome, Succeeded, Waiting
from releaseflow.engine.release_state import record_release
from releaseflow.engine.transitions import transition_node, update_fenced
from releaseflow.store import runs as run_store
from releaseflow.store.database import Transaction
from releaseflow.store.records import NodeRecord

# How long a node may wait for its condition when its template sets no timeoutDuration.
DEFAULT_WAIT_TIMEOUT_SECONDS = 900.0
# A node whose worker was lost this many times in a row is taken to be what kills its workers.
MAX_LOST_CLAIMS = 5
LOST = "lost"  # status of an attempt-log entry whose worker vanished before it answered


@dataclass(frozen=True)
class Aborted:
    """The worker stopped the action because the run is being aborted."""

    message: str = "stopped: the run was aborted"


Answer = Outcome | Aborted

_RELEASE_LEASE: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}


async def fail_for_good(
    tx: Transaction,
    node: NodeRecord,
    error: dict[str, Any],
    now: datetime,
    *,
    attempts: list[dict[str, Any]],
    **fields: Any,
) -> None:
    """The node fails at once, its cause saying that no retry was made: no attempt could change it."""
    await transition_node(
        tx,
        node,
        NodeStatus.FAILED,
        f"failed (not retried): {error['message']}",
        now,
        error=error,
        attempts=attempts,
        **fields,
    )


def finish_attempt(node: NodeRecord, now: datetime, **details: Any) -> list[dict[str, Any]]:
    attempts = [dict(entry) for entry in node.attempts]
    if attempts and attempts[-1].get("attempt") == node.attempt and "endTime" not in attempts[-1]:
        attempts[-1].update(endTime=now.timestamp(), **details)
    return attempts


async def apply_answer(tx: Transaction, node: NodeRecord, answer: Answer, now: datetime) -> None:
    """Write the effect of ``answer`` on ``node`` (running or waiting, leased by the answerer)."""
    if isinstance(answer, Succeeded):
        await record_release(tx, node, answer.data, now)
        await transition_node(
            tx,
            node,
            NodeStatus.SUCCESS,
            "succeeded",
            now,
            data=answer.data,
            error=None,
            attempts=finish_attempt(node, now, status="success"),
        )
    elif isinstance(answer, Aborted):
        await transition_node(
            tx,
            node,
            NodeStatus.ABORTED,
            answer.message,
            now,
            attempts=finish_attempt(node, now, status="aborted"),
        )
    elif isinstance(answer, Failed):
        await _fail_attempt(tx, node, answer, now)
    else:
        await _wait(tx, node, answer, now)


def lost_in_a_row(attempts: list[dict[str, Any]]) -> int:
    """How many claims at the end of the attempt log were lost (their worker vanished)."""
    count = 0
    for entry in reversed(attempts):
        if entry.get("status") != LOST:
            break
        count += 1
    return count


async def lose_claim(tx: Transaction, node: NodeRecord, cause: str, now: datetime) -> None:
    """The worker holding ``node`` is gone (lease expired, or its process restarted).

    A lost poll of a waiting node is simply made due again: the action lives on the platform. A lost
    attempt of a running node is not the node's fault: it is due again at once, without backoff and
    without using up an attempt, and the next claim resumes the same attempt (same idempotency key,
    so the driver adopts what the lost attempt started). A node that loses its worker
    ``MAX_LOST_CLAIMS`` times in a row fails: it is most likely what kills its workers.
    """
    if node.status is NodeStatus.WAITING:
        await update_fenced(tx, node, {"due_at": now, "became_due_at": now, **_RELEASE_LEASE})
        tx.wake_workers()
        return
    error = {"code": 500, "message": cause}
    attempts = finish_attempt(node, now, status=LOST, error=error)
    lost = lost_in_a_row(attempts)
    if lost >= MAX_LOST_CLAIMS:
        message = (
            f"attempt {node.attempt} lost its worker {lost} times in a row (the last time: {cause});"
            " the node is taken to be what stops its workers and is not run again"
        )
        await fail_for_good(tx, node, {"code": 500, "message": message}, now, attempts=attempts)
        return
    await update_fenced(
        tx, node, {"attempts": attempts, "due_at": now, "became_due_at": now, **_RELEASE_LEASE}
    )
    run_store.append_event(
        tx,
        node.run_id,
        node.path,
        now,
        str(NodeStatus.RUNNING),
        str(NodeStatus.RUNNING),
        f"{cause}; attempt {node.attempt} of {node.max_attempts} will be resumed at once",
    )
    tx.wake_workers()


async def _fail_attempt(tx: Transaction, node: NodeRecord, failure: Failed, now: datetime) -> None:
    error = {"code": failure.code, "message": failure.message}
    data = failure.data if failure.data is not None else node.data
    decision = decide_retry(
        attempt=node.attempt,
        max_attempts=node.max_attempts,
        backoff_seconds=DEFAULT_BACKOFF_SECONDS if node.backoff_seconds is None else node.backoff_seconds,
        retryable=failure.retryable,
        now=now,
    )
    if decision.retry:
        attempts = finish_attempt(node, now, status="failed", error=error)
    else:
        # Say why this failure is final: the error itself when it is not retryable.
        why = f"{decision.reason}: {failure.message}" if not failure.retryable else decision.reason
        attempts = finish_attempt(node, now, status="failed", error=error, noRetry=why)
    if decision.retry:
        assert decision.next_attempt_at is not None
        await transition_node(
            tx,
            node,
            NodeStatus.RETRYING,
            f"attempt {node.attempt} of {node.max_attempts} failed: {failure.message}",
            now,
            error=error,
            data=data,
            attempts=attempts,
            next_attempt_at=decision.next_attempt_at,
            due_at=decision.next_attempt_at,
            became_due_at=decision.next_attempt_at,
            wait_deadline=None,
            **_RELEASE_LEASE,
        )
        tx.wake_workers()
        return
    why = "not retryable" if not failure.retryable else f"attempt {node.attempt} of {node.max_attempts}"
    await transition_node(
        tx,
        node,
        NodeStatus.FAILED,
        f"failed ({why}): {failure.message}",
        now,
        error=error,
        data=data,
        attempts=attempts,
    )


async def _wait(tx: Transaction, node: NodeRecord, waiting: Waiting, now: datetime) -> None:
    deadline = node.wait_deadline
    if deadline is None:
        deadline = now + timedelta(seconds=node.timeout_seconds or DEFAULT_WAIT_TIMEOUT_SECONDS)
    if now >= deadline:
        await _fail_attempt(
            tx, node, Failed(f"timed out: still not done after waiting until {deadline.isoformat()}"), now
        )
        return
    next_poll = min(now + timedelta(seconds=max(waiting.poll_after, 0.0)), deadline)
    fields: dict[str, Any] = {
        "wait_state": waiting.state,
        "wait_deadline": deadline,
        "due_at": next_poll,
        "became_due_at": next_poll,
        **_RELEASE_LEASE,
    }
    if waiting.data is not None:
        fields["data"] = waiting.data
    if node.status is NodeStatus.WAITING:
        # Another poll that found the action still busy: not a transition, so no event.
        await update_fenced(tx, node, fields)
    else:
        await transition_node(
            tx,
            node,
            NodeStatus.WAITING,
            f"accepted; waiting until {deadline.isoformat()}",
            now,
            **fields,
        )
    tx.wake_workers()

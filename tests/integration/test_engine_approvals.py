"""Approval nodes: approved or rejected in the caller's transaction, with who, when and why."""

from __future__ import annotations

import pytest
from tests.integration.support import EngineHarness, job_run, template, wait_for_node, workflow

from releaseflow.domain.errors import ConflictError
from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.store import runs as run_store
from releaseflow.store.records import EventRecord


def approval(ref: str = "gate", amount: int = 1) -> dict[str, object]:
    return {"kind": "Approval", "ref": ref, "spec": {"amount": amount}}


async def test_approval__needs_distinct_approvers_and_records_each(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(approval(amount=2), job_run("after"))))
    run = await harness.start()
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "gate", "waiting")

    await harness.engine.approve(run.id, "gate", "alice", "tests are green")
    with pytest.raises(ConflictError, match="alice already approved"):
        await harness.engine.approve(run.id, "gate", "alice")
    assert (await harness.nodes(run.id))["gate"].status is NodeStatus.WAITING
    await harness.engine.approve(run.id, "gate", "bob")

    assert (await harness.run(run.id)).status is RunStatus.SUCCESS
    gate = (await harness.nodes(run.id))["gate"]
    assert gate.data["approvals"] == ["alice", "bob"]
    assert [(d["by"], d["decision"], d["comment"]) for d in gate.data["decisions"]] == [
        ("alice", "approved", "tests are green"),
        ("bob", "approved", ""),
    ]
    causes = [e.cause for e in await _node_events(harness, run.id, gate.path)]
    assert "approved by alice: tests are green (1 of 2)" in causes
    assert "approved by bob (2 of 2)" in causes


async def test_approval__a_rejection_fails_the_node_with_its_reason(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(approval(), job_run("after"))))
    run = await harness.start()
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "gate", "waiting")

    await harness.engine.reject(run.id, "gate", "carol", "not during the freeze")

    done = await harness.run(run.id)
    nodes = await harness.nodes(run.id)
    assert done.status is RunStatus.FAILED
    assert nodes["gate"].status is NodeStatus.FAILED
    assert nodes["gate"].error == {"code": 403, "message": "rejected by carol: not during the freeze"}
    assert nodes["gate"].attempt == 1
    assert nodes["after"].status is NodeStatus.SKIPPED
    assert harness.driver.calls == []
    with pytest.raises(ConflictError, match="not an Approval awaiting"):
        await harness.engine.approve(run.id, "gate", "dave")


async def _node_events(harness: EngineHarness, run_id: str, path: str) -> list[EventRecord]:
    async with harness.db.read() as tx:
        return [event for event in await run_store.list_events(tx, run_id) if event.node_path == path]

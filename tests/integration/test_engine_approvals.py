"""Approval nodes: approved or rejected in the caller's transaction, with who, when and why."""

from __future__ import annotations

import pytest
from tests.integration.support import EngineHarness, job_run, template, wait_for_node, workflow

from releaseflow.domain.errors import ConflictError, ForbiddenError
from releaseflow.domain.run_origin import OriginKind, RunOrigin
from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.engine.approval_queue import waiting_approvals
from releaseflow.store import runs as run_store
from releaseflow.store.records import EventRecord


def approval(ref: str = "gate", amount: int = 1, **extra: object) -> dict[str, object]:
    return {"kind": "Approval", "ref": ref, "spec": {"amount": amount}, **extra}


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


async def test_approval__the_runs_starter_cannot_decide_on_it(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(approval(), job_run("after"))))
    run = await harness.start(origin=RunOrigin(OriginKind.PERSON, "alice"))
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "gate", "waiting")

    for decide in (harness.engine.approve, harness.engine.reject):
        with pytest.raises(ForbiddenError, match="alice started this run and cannot approve or reject it"):
            await decide(run.id, "gate", "alice", "")
    gate = (await harness.nodes(run.id))["gate"]
    assert (gate.status, gate.data["decisions"]) == (NodeStatus.WAITING, [])

    await harness.engine.approve(run.id, "gate", "bob")
    assert (await harness.run(run.id)).status is RunStatus.SUCCESS


async def test_approval__named_approvers_alone_decide(harness: EngineHarness) -> None:
    gate = {"kind": "Approval", "ref": "gate", "spec": {"amount": 1, "approvers": ["bob", "dana"]}}
    await harness.seed(template(workflow(gate)))
    run = await harness.start(origin=RunOrigin(OriginKind.PERSON, "alice"))
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "gate", "waiting")

    with pytest.raises(
        ForbiddenError, match=r"carol is not an approver of this node \(approvers: bob, dana\)"
    ):
        await harness.engine.reject(run.id, "gate", "carol", "no")
    await harness.engine.approve(run.id, "gate", "dana", "ok")
    assert (await harness.run(run.id)).status is RunStatus.SUCCESS


async def test_waiting_approvals__lists_each_waiting_node_for_whom_may_decide(harness: EngineHarness) -> None:
    named = {"kind": "Approval", "ref": "named", "spec": {"amount": 2, "approvers": ["bob", "carol"]}}
    expiring = approval("anyone", timeoutDuration=3600)
    await harness.seed(template(workflow(named, expiring, kind="parallel")))
    run = await harness.start(origin=RunOrigin(OriginKind.PERSON, "alice"), name="release one")
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "named", "waiting")
    await wait_for_node(harness.db, run.id, "anyone", "waiting")
    await harness.engine.approve(run.id, "named", "bob")

    everything = await waiting_approvals(harness.db)
    assert sorted((w.node, w.required, w.approved_by, w.approvers) for w in everything) == [
        ("anyone", 1, (), ()),
        ("named", 2, ("bob",), ("bob", "carol")),
    ]
    first = everything[0]
    assert (first.run_id, first.run_name, first.stage, first.started_by) == (
        run.id,
        "release one",
        "Development",
        "alice",
    )
    assert all(w.since is not None for w in everything)
    expiry = {w.node: w.expires for w in everything}
    assert expiry["named"] is None and expiry["anyone"] is not None
    # alice started it; bob already approved the named one; carol may decide both; erin only the open one.
    assert [w.node for w in await waiting_approvals(harness.db, "alice")] == []
    assert [w.node for w in await waiting_approvals(harness.db, "bob")] == ["anyone"]
    assert sorted(w.node for w in await waiting_approvals(harness.db, "carol")) == ["anyone", "named"]
    assert [w.node for w in await waiting_approvals(harness.db, "erin")] == ["anyone"]

    await harness.engine.approve(run.id, "anyone", "erin")
    assert [w.node for w in await waiting_approvals(harness.db)] == ["named"]

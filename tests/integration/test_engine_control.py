"""Abort, concurrency policies, leases, the reaper and the event log."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from tests.integration.support import (
    EngineHarness,
    deploy,
    fast,
    job_run,
    template,
    wait_for_node,
    wait_for_run,
    workflow,
)

from releaseflow.domain.errors import ConflictError, StaleLeaseError
from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.engine.dispatch import Claim
from releaseflow.engine.executors.base import Succeeded
from releaseflow.engine.reaper import reap_expired_leases
from releaseflow.engine.worker import Worker
from releaseflow.store import runs as run_store
from releaseflow.testing import Hang, InProgress, Succeed


def gate(ref: str = "gate") -> dict[str, object]:
    return {"kind": "Approval", "ref": ref, "spec": {"amount": 1}}


def policy(name: str) -> dict[str, object]:
    return {"options": {"concurrencyPolicy": name}}


async def test_abort__stops_a_running_action_and_aborts_the_rest(harness: EngineHarness) -> None:
    harness.driver.script("migrate", Hang())
    await harness.seed(template(workflow(job_run("stuck"), deploy("later"))))
    run = await harness.start()
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "stuck", "running")

    aborting = await harness.engine.abort_run(run.id)
    assert aborting.status is RunStatus.ABORTING
    done = await harness.run(run.id)

    nodes = await harness.nodes(run.id)
    assert done.status is RunStatus.ABORTED
    assert nodes["stuck"].status is NodeStatus.ABORTED
    assert nodes["later"].status is NodeStatus.ABORTED
    assert [call.resource.id for call in harness.driver.cancelled] == ["migrate"]
    with pytest.raises(ConflictError):
        await harness.engine.abort_run(run.id)


async def test_abort__a_waiting_node_ends_at_once(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(gate())))
    run = await harness.start()
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "gate", "waiting")
    await harness.engine.abort_run(run.id)
    assert (await harness.run(run.id)).status is RunStatus.ABORTED


async def test_concurrency__queue_runs_one_after_another(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(gate()), **policy("queue")))
    first = await harness.start(name="first")
    second = await harness.start(name="second")
    third = await harness.start(name="third")
    assert second.status is RunStatus.QUEUED
    assert second.waiting_reason is not None and first.id in second.waiting_reason
    assert third.waiting_reason is not None and second.id in third.waiting_reason
    harness.start_worker()
    await wait_for_node(harness.db, first.id, "gate", "waiting")
    await harness.engine.approve(first.id, "gate", "alice")
    assert (await harness.run(first.id)).status is RunStatus.SUCCESS
    # First in, first out: the second run is admitted, the third still waits.
    await wait_for_node(harness.db, second.id, "gate", "waiting")
    assert await harness.run_status(third.id) is RunStatus.QUEUED


async def test_concurrency__forbid_refuses_while_a_run_is_active(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(gate()), **policy("forbid")))
    first = await harness.start()
    with pytest.raises(ConflictError, match=first.id):
        await harness.start()
    await harness.engine.abort_run(first.id)
    harness.start_worker()
    await harness.run(first.id)
    later = await harness.start()
    assert later.status is not RunStatus.QUEUED


async def test_concurrency__latest_keeps_only_the_newest_waiting_run(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(gate()), **policy("latest")))
    active = await harness.start()
    older = await harness.start()
    newest = await harness.start()
    assert await harness.run_status(older.id) is RunStatus.ABORTED
    assert newest.status is RunStatus.QUEUED
    assert await harness.run_status(active.id) in (RunStatus.PENDING, RunStatus.RUNNING)


async def test_concurrency__replace_aborts_the_active_run(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(gate()), **policy("replace")))
    harness.start_worker()
    old = await harness.start()
    await wait_for_node(harness.db, old.id, "gate", "waiting")
    new = await harness.start()
    assert (await harness.run(old.id)).status is RunStatus.ABORTED
    await wait_for_node(harness.db, new.id, "gate", "waiting")
    events = await harness.events(old.id)
    assert (None, "running", "aborting") in events


async def test_lease__a_late_answer_from_a_lost_lease_is_refused(harness: EngineHarness) -> None:
    harness.driver.script("migrate", Hang(), Succeed())
    await harness.seed(template(workflow(fast(job_run("slow")))))
    run = await harness.start()
    worker = harness.worker
    assert await worker.claim_once() == 1
    held = (await harness.nodes(run.id))["slow"]
    claim = Claim(
        node_id=held.id,
        run_id=run.id,
        path=held.path,
        kind=held.kind,
        ref=held.ref,
        lease_token=held.lease_token,
        attempt=1,
        max_attempts=3,
        code={},
        wait_state=None,
        poll=False,
        cancel=False,
        project_id="shop",
        pipeline_id="main",
        stage="Development",
        node=held,
    )
    # The worker freezes: its lease runs out and the reaper makes the attempt due again at once.
    assert held.lease_expires_at is not None
    later = held.lease_expires_at + timedelta(seconds=1)
    assert await reap_expired_leases(harness.db, later, harness.worker.templates) == 1
    reaped = (await harness.nodes(run.id))["slow"]
    assert (reaped.status, reaped.lease_owner, reaped.due_at) == (NodeStatus.RUNNING, None, later)
    assert "lost its lease" in reaped.attempts[-1]["error"]["message"]

    with pytest.raises(StaleLeaseError):
        await worker.complete(claim, Succeeded({"late": True}))
    assert (await harness.nodes(run.id))["slow"].data is None
    await worker._stop_tasks()


async def test_lease__work_of_a_dead_worker_is_resumed_by_another(harness: EngineHarness) -> None:
    harness.driver.script("migrate", Hang(), Succeed({"exitCode": 0}))
    await harness.seed(template(workflow(job_run("migration"), deploy("release"))))
    run = await harness.start()
    dying = harness.worker
    await dying.claim_once()
    await wait_for_node(harness.db, run.id, "migration", "running")
    # The process dies: its tasks vanish without answering, its leases stay behind.
    await dying._stop_tasks()
    died = time.time()
    survivor = Worker(harness.db, dying.executors, harness.engine.clock, replace(dying.settings))
    harness.worker = survivor
    harness.start_worker()
    done = await wait_for_run(harness.db, run.id, timeout=30)
    node = (await harness.nodes(run.id))["migration"]
    assert done.status is RunStatus.SUCCESS
    # The same attempt again (no attempt used up), under the same key, with no retry backoff (10 s).
    assert node.attempt == 1
    assert [entry["status"] for entry in node.attempts] == ["lost", "success"]
    assert node.attempts[1]["worker"] == survivor.id and node.attempts[1]["resumed"] is True
    keys = [call.idempotency_key for call in harness.driver.calls_on("migrate")]
    assert keys == [f"{run.id}/spec.spec.steps[0]/1"] * 2
    restart = node.attempts[1]["startTime"] - died
    if harness.db.dialect == "sqlite":
        assert restart < 1.0  # a restarted single process takes its leases back at once
    else:
        assert restart < dying.settings.lease_seconds + 2 * dying.settings.reap_seconds


async def test_events__every_transition_is_logged_with_its_cause(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(job_run("migration"))))
    run = await harness.start(name="logged")
    harness.start_worker()
    await harness.run(run.id)
    async with harness.db.read() as tx:
        events = await run_store.list_events(tx, run.id)
    assert [event.id for event in events] == sorted(event.id for event in events)
    assert all(event.cause for event in events)
    run_events = [(event.from_status, event.to_status) for event in events if event.node_path is None]
    assert run_events == [(None, "pending"), ("pending", "running"), ("running", "success")]
    node_events = [(e.from_status, e.to_status) for e in events if e.node_path == "spec.spec.steps[0]"]
    assert node_events == [("pending", "running"), ("running", "success")]
    assert all(event.at.tzinfo is not None for event in events)


async def test_rename__display_name_and_description_can_change_later(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(job_run("migration"))))
    run = await harness.start()
    assert run.display_name == run.id
    renamed = await harness.engine.rename_run(run.id, name="hotfix 1", description="rolled out by hand")
    assert (renamed.display_name, renamed.description) == ("hotfix 1", "rolled out by hand")
    await asyncio.sleep(0)


async def test_abort__a_waiting_action_is_stopped_on_the_platform(harness: EngineHarness) -> None:
    harness.driver.script("migrate", InProgress(polls=1000))
    await harness.seed(template(workflow(job_run("migration", condition="success"), deploy("later"))))
    run = await harness.start()
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "migration", "waiting")

    await harness.engine.abort_run(run.id)
    done = await harness.run(run.id)

    nodes = await harness.nodes(run.id)
    assert done.status is RunStatus.ABORTED
    assert nodes["migration"].status is NodeStatus.ABORTED
    assert nodes["migration"].cause == "stopped: the run was aborted; fake: stopped run_job on migrate"
    ((request, handle),) = harness.driver.stopped
    assert request.idempotency_key == f"{run.id}/spec.spec.steps[0]/1"
    assert handle == {"key": request.idempotency_key}

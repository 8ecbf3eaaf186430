"""Dead workers on PostgreSQL, with real worker processes: a SIGKILLed worker's node runs again on
another worker long before its lease would run out; a live worker is never taken for dead across
restarts of the server and cut connections."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest
from tests.integration.http_receiver import Receiver
from tests.integration.support import EngineHarness, template, wait_for_run, workflow
from tests.integration.test_many_workers import idle_harness, message
from tests.integration.worker_process import worker_processes
from tests.postgres_cluster import PostgresCluster

from releaseflow.domain.statuses import RunStatus
from releaseflow.store.database import open_database
from releaseflow.store.outages import retry_transient
from releaseflow.store.records import NodeRecord

# Far longer than any reclaim the liveness lock allows: a node taken back sooner was not taken back
# by its lease running out.
LEASE_SECONDS = 60.0


@pytest.fixture
def inbox() -> Iterator[Receiver]:
    # The first delivery waits for release(): the worker that sends it stays mid-delivery.
    receiver = Receiver(hold=1)
    yield receiver
    receiver.close()


@pytest.fixture
def workers(
    fresh_postgres_database: Callable[..., str], migrated_postgres_template: str
) -> Iterator[tuple[str, list[subprocess.Popen[str]]]]:
    url = fresh_postgres_database(template=migrated_postgres_template)
    with worker_processes(url, 2, LEASE_SECONDS) as processes:
        yield url, processes


@dataclass(frozen=True)
class Delivering:
    """A run of one Message node, leased to ``owner`` (one of ``processes``), mid-delivery."""

    harness: EngineHarness
    run_id: str
    owner: str
    processes: list[subprocess.Popen[str]]


@pytest.fixture
async def delivering(
    workers: tuple[str, list[subprocess.Popen[str]]], inbox: Receiver
) -> AsyncIterator[Delivering]:
    url, processes = workers
    db = await open_database(url)
    try:
        harness = idle_harness(db)
        await harness.seed(template(workflow(message("notify", inbox.url))))
        run = await harness.start(name="held")
        deadline = time.monotonic() + 20
        while not inbox.deliveries:
            assert time.monotonic() < deadline, "no worker delivered the message"
            await asyncio.sleep(0.05)
        owner = (await holder_of(harness, run.id)).lease_owner
        assert owner is not None
        yield Delivering(harness, run.id, owner, processes)
    finally:
        await db.close()


async def holder_of(harness: EngineHarness, run_id: str) -> NodeRecord:
    async def read() -> NodeRecord:
        return (await harness.nodes(run_id))["notify"]

    # This process's pooled connections may have been cut meanwhile too.
    node = await retry_transient(harness.db, read, what="reading the node")
    assert node.lease_owner is not None, "the node should be leased while its message is delivered"
    return node


async def test_dead_worker__its_node_runs_again_well_within_the_lease(
    delivering: Delivering, inbox: Receiver
) -> None:
    harness, run_id, owner, processes = (
        delivering.harness,
        delivering.run_id,
        delivering.owner,
        delivering.processes,
    )
    victim = next(process for process in processes if f"worker-{process.pid}-" in owner)
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.monotonic()
    inbox.release()  # the next delivery is answered at once
    done = await wait_for_run(harness.db, run_id, timeout=LEASE_SECONDS / 2)
    node = (await harness.nodes(run_id))["notify"]

    assert done.status is RunStatus.SUCCESS
    assert [entry["status"] for entry in node.attempts] == ["lost", "success"]
    assert "died" in node.attempts[0]["error"]["message"], node.attempts[0]
    assert node.attempts[1]["worker"] != owner and node.attempts[1]["resumed"] is True
    first, again = inbox.deliveries
    assert first.headers["Idempotency-Key"] == again.headers["Idempotency-Key"] == f"{run_id}/{node.path}/1"
    reclaim = again.at - killed
    print(f"delivered again {reclaim:.2f}s after the SIGKILL (lease {LEASE_SECONDS:g}s)")
    assert reclaim < LEASE_SECONDS / 2, "taken back by the lease running out, not by the lock"
    survivor = next(process for process in processes if process is not victim)
    assert survivor.poll() is None


async def test_live_worker__is_never_taken_for_dead_across_restarts_and_cut_connections(
    delivering: Delivering, inbox: Receiver, postgres_cluster: PostgresCluster
) -> None:
    harness, run_id, owner = delivering.harness, delivering.run_id, delivering.owner
    # While the holder waits on its delivery: every lock is released twice by a restart and once
    # by cutting every connection. Each time the other worker's reaper may look first.
    await asyncio.to_thread(postgres_cluster.restart)
    await asyncio.sleep(1.0)
    assert await asyncio.to_thread(postgres_cluster.terminate_backends) > 0
    await asyncio.sleep(1.0)
    await asyncio.to_thread(postgres_cluster.restart)
    # Longer than the grace (2 s) and a reaper pass (0.5 s): a false death would be reaped by now.
    await asyncio.sleep(3.5)
    assert (await holder_of(harness, run_id)).lease_owner == owner, "the live holder's lease was taken"
    inbox.release()
    done = await wait_for_run(harness.db, run_id, timeout=30)
    node = (await harness.nodes(run_id))["notify"]
    events = await harness.events(run_id)

    assert done.status is RunStatus.SUCCESS
    assert [(entry["status"], entry["worker"]) for entry in node.attempts] == [("success", owner)]
    assert len(inbox.deliveries) == 1, "the message was delivered more than once"
    assert [event for event in events if event[0] == node.path] == [
        (node.path, "pending", "running"),
        (node.path, "running", "success"),
    ]
    assert all(process.poll() is None for process in delivering.processes)

"""Several worker processes on one PostgreSQL database share the work, each node once per attempt."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from tests.integration.http_receiver import Receiver
from tests.integration.support import EngineHarness, template, wait_for_run, workflow
from tests.integration.worker_process import worker_processes

from releaseflow.domain.statuses import RunStatus
from releaseflow.engine.clock import SystemClock
from releaseflow.engine.commands import Engine
from releaseflow.engine.executors import default_executors
from releaseflow.engine.worker import Worker
from releaseflow.platform.driver import DriverRegistry
from releaseflow.store.database import Database, open_database
from releaseflow.testing import FakeDriver

BRANCHES, CHAIN = 4, 10


@pytest.fixture
def inbox() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def message(ref: str, url: str) -> dict[str, object]:
    return {
        "kind": "Message",
        "ref": ref,
        "spec": {"kind": "RAW_WEBHOOK", "spec": {"webhookUrl": url, "message": ref}},
    }


def idle_harness(db: Database) -> EngineHarness:
    """A harness to seed and start runs with, for worker processes to run: this process runs no worker."""
    clock = SystemClock()
    idle = Worker(db, default_executors(DriverRegistry()), clock)
    return EngineHarness(db=db, engine=Engine(db, clock), worker=idle, driver=FakeDriver())


@pytest.fixture
def workers(
    fresh_postgres_database: Callable[..., str], migrated_postgres_template: str
) -> Iterator[tuple[str, list[subprocess.Popen[str]]]]:
    url = fresh_postgres_database(template=migrated_postgres_template)
    with worker_processes(url, 2) as processes:
        yield url, processes


async def test_many_workers__each_node_runs_exactly_once_per_attempt(
    workers: tuple[str, list[subprocess.Popen[str]]], inbox: Receiver
) -> None:
    url, processes = workers
    db = await open_database(url)
    try:
        harness = idle_harness(db)
        branches = [
            workflow(*(message(f"b{branch}-n{step}", inbox.url) for step in range(CHAIN)))
            for branch in range(BRANCHES)
        ]
        await harness.seed(template(workflow(*branches, kind="parallel")))
        run = await harness.start(name="shared")
        done = await wait_for_run(db, run.id, timeout=90)
        nodes = await harness.nodes(run.id)
    finally:
        await db.close()

    assert done.status is RunStatus.SUCCESS
    leaves = [node for node in nodes.values() if node.kind == "Message"]
    assert len(leaves) == BRANCHES * CHAIN
    assert all(node.attempt == 1 for node in leaves)
    deliveries = Counter(delivery.headers["Idempotency-Key"] for delivery in inbox.deliveries)
    assert set(deliveries) == {f"{run.id}/{node.path}/1" for node in leaves}
    assert set(deliveries.values()) == {1}, "a node was delivered more than once"
    by_worker = Counter(node.attempts[0]["worker"] for node in leaves)
    assert len(by_worker) == 2, f"both worker processes should have taken work: {by_worker}"
    assert all(process.poll() is None for process in processes)

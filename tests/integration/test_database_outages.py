"""The worker rides out database outages, and holds a lease only while a live task works on the node.

An outage is real on both databases: on PostgreSQL the server is stopped and started again (or every
connection is cut with ``pg_terminate_backend``); on SQLite a second connection holds the write lock,
so that the worker's statements fail with "database is locked" (the worker's busy timeout is short).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from tests.integration.support import EngineHarness, deploy, job_run, template, wait_for_run, workflow
from tests.postgres_cluster import PostgresCluster

from releaseflow.domain.statuses import RunStatus
from releaseflow.engine.clock import SystemClock
from releaseflow.engine.executors import default_executors
from releaseflow.engine.reaper import reap_expired_leases
from releaseflow.engine.templates import TemplateCache
from releaseflow.engine.worker import Worker, WorkerSettings
from releaseflow.platform.driver import DriverAnswer, DriverRegistry, DriverRequest
from releaseflow.store.database import Database, open_database
from releaseflow.store.migrate import migrate
from releaseflow.store.outages import retry_transient
from releaseflow.store.records import RunRecord
from releaseflow.store.sqlite import SqliteDatabase
from releaseflow.testing import FakeDriver

# The worker's SQLite connection gives up on a lock after this long (the default is 10 s).
SHORT_BUSY_TIMEOUT = 0.2


class GatedDriver(FakeDriver):
    """A fake driver whose actions answer only once the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.asked = asyncio.Event()

    async def perform(self, request: DriverRequest) -> DriverAnswer:
        self.asked.set()
        await self.gate.wait()
        return await super().perform(request)


class DatabaseOutage:
    """Takes the test's database away and brings it back."""

    def __init__(self, database_url: str, cluster: PostgresCluster | None) -> None:
        self.database_url = database_url
        self.cluster = cluster
        self._lock: sqlite3.Connection | None = None
        self._server_down = False

    async def begin(self) -> None:
        if self.cluster is not None:
            self._server_down = True
            await asyncio.to_thread(self.cluster.stop_server)
        else:
            path = self.database_url.removeprefix("sqlite:").removeprefix("//")
            self._lock = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
            # The write lock, held until end(). In a thread: the worker must be able to finish the
            # transaction it may have open meanwhile, which needs this event loop.
            await asyncio.to_thread(self._lock.execute, "BEGIN IMMEDIATE")

    async def end(self) -> None:
        if self.cluster is not None and self._server_down:
            await asyncio.to_thread(self.cluster.start_server)
            self._server_down = False
        elif self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None

    async def last(self, seconds: float) -> None:
        await self.begin()
        try:
            await asyncio.sleep(seconds)
        finally:
            await self.end()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    # Overrides the suite's `db`: SQLite with a short busy timeout, so a held lock fails statements.
    if database_url.startswith("sqlite"):
        database: Database = await SqliteDatabase.open(database_url, busy_timeout=SHORT_BUSY_TIMEOUT)
    else:
        database = await open_database(database_url)
    await migrate(database)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def fake_driver() -> GatedDriver:
    return GatedDriver()


@pytest.fixture
async def outage(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[DatabaseOutage]:
    cluster = request.getfixturevalue("postgres_cluster") if database_url.startswith("postgres") else None
    taken = DatabaseOutage(database_url, cluster)
    try:
        yield taken
    finally:
        await taken.end()  # never leave the shared server down for the next test


def gated_driver(harness: EngineHarness) -> GatedDriver:
    assert isinstance(harness.driver, GatedDriver)
    return harness.driver


async def finished(harness: EngineHarness, run_id: str) -> RunRecord:
    """The run once it ended; the test's own reads ride out what is left of the outage too."""
    return await retry_transient(
        harness.db, lambda: wait_for_run(harness.db, run_id, timeout=30), what="the test waiting for its run"
    )


async def until(condition: asyncio.Event, timeout: float = 10.0) -> None:
    await asyncio.wait_for(condition.wait(), timeout=timeout)


@pytest.mark.parametrize(
    ("outage_seconds", "lease_seconds"),
    [(1.5, 3.0), (2.5, 1.0)],
    ids=["shorter-than-the-lease", "longer-than-the-lease"],
)
async def test_worker__rides_out_an_outage_while_an_answer_waits_to_be_recorded(
    harness: EngineHarness, outage: DatabaseOutage, outage_seconds: float, lease_seconds: float
) -> None:
    driver = gated_driver(harness)
    harness.worker.settings = WorkerSettings(
        lease_seconds=lease_seconds, heartbeat_seconds=0.2, reap_seconds=0.2, idle_poll_seconds=0.1
    )
    await harness.seed(template(workflow(deploy("first"), job_run("second"), deploy("third", service="web"))))
    run = await harness.start()
    harness.start_worker()
    await until(driver.asked)
    worker_task = harness._task
    assert worker_task is not None

    await outage.begin()
    try:
        driver.gate.set()  # the first action answers while the database is away
        await asyncio.sleep(outage_seconds)
        assert harness.db.outage is not None, "the failures of the worker were not noticed"
        assert not worker_task.done(), worker_task.exception() if worker_task.done() else None
    finally:
        await outage.end()

    done = await finished(harness, run.id)
    assert done.status is RunStatus.SUCCESS
    # Cleared by the next transaction that commits (one may still meet a connection left from before).
    nodes = await retry_transient(harness.db, lambda: harness.nodes(run.id), what="the test reading nodes")
    assert harness.db.outage is None
    assert not worker_task.done()
    # Recorded after the outage (one claim), or released when the lease ran out and run again.
    assert nodes["first"].lease_token in (1, 2)
    assert len(driver.calls_on("api")) == nodes["first"].lease_token
    assert [node.lease_owner for node in nodes.values()] == [None] * len(nodes)


async def test_worker__survives_outages_between_its_claims(
    harness: EngineHarness, outage: DatabaseOutage
) -> None:
    driver = gated_driver(harness)
    driver.gate.set()
    await harness.seed(template(workflow(*(job_run(f"step{index}") for index in range(6)))))
    harness.start_worker()
    await outage.last(1.0)  # the worker is idle, polling for work
    run = await harness.start()
    await outage.last(1.0)

    done = await finished(harness, run.id)
    assert done.status is RunStatus.SUCCESS
    assert len(driver.calls_on("migrate")) == 6


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_worker__survives_its_connections_being_cut(
    harness: EngineHarness, postgres_cluster: PostgresCluster
) -> None:
    driver = gated_driver(harness)
    await harness.seed(template(workflow(deploy("first"), job_run("second"))))
    run = await harness.start()
    harness.start_worker()
    await until(driver.asked)
    assert await asyncio.to_thread(postgres_cluster.terminate_backends) > 0
    driver.gate.set()
    await asyncio.to_thread(postgres_cluster.terminate_backends)

    done = await finished(harness, run.id)
    assert done.status is RunStatus.SUCCESS
    assert harness._task is not None and not harness._task.done()


async def test_heartbeat__extends_no_lease_without_a_live_task(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(deploy("first"))))  # its action waits for the gate
    run = await harness.start()
    working = harness.worker
    assert await working.claim_once() == 1
    # The same worker id after it lost its task (a restart, a claim whose commit it never saw): it
    # heartbeats, but works on nothing.
    idle = Worker(
        harness.db,
        default_executors(DriverRegistry({"fake": harness.driver})),
        SystemClock(),
        working.settings,
        worker_id=working.id,
    )
    leased = (await harness.nodes(run.id))["first"]
    assert leased.lease_owner == working.id and leased.lease_expires_at is not None

    await asyncio.sleep(0.01)  # the clock must move for an extension to show
    await idle.heartbeat()
    after_idle = (await harness.nodes(run.id))["first"]
    await working.heartbeat()
    after_working = (await harness.nodes(run.id))["first"]
    await working._stop_tasks()

    assert after_idle.lease_expires_at == leased.lease_expires_at
    assert (
        after_working.lease_expires_at is not None
        and after_working.lease_expires_at > leased.lease_expires_at
    )


async def test_worker__releases_the_lease_of_a_task_that_ended_without_an_answer(
    harness: EngineHarness,
) -> None:
    await harness.seed(template(workflow(deploy("first"))))  # its action waits for the gate
    run = await harness.start()
    assert await harness.worker.claim_once() == 1
    before = (await harness.nodes(run.id))["first"]

    await harness.worker._stop_tasks()  # the task ends without an answer (here: the worker stops)

    released = (await harness.nodes(run.id))["first"]
    assert released.lease_owner == harness.worker.id  # still the same claim, fenced by its token
    assert released.lease_expires_at is not None and before.lease_expires_at is not None
    assert released.lease_expires_at < before.lease_expires_at
    # The reaper reclaims it now, without waiting out the lease.
    now = datetime.now(UTC) + timedelta(milliseconds=10)
    assert await reap_expired_leases(harness.db, now, TemplateCache()) == 1
    assert (await harness.nodes(run.id))["first"].lease_owner is None

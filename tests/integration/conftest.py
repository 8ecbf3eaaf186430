"""Store and engine fixtures: every integration case runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest
from tests.integration.support import EngineHarness

from releaseflow.application import Application
from releaseflow.engine.worker import WorkerSettings
from releaseflow.platform.driver import DriverRegistry
from releaseflow.settings import Settings
from releaseflow.store.database import Database, open_database
from releaseflow.store.migrate import migrate
from releaseflow.testing import FakeDriver

MIGRATED_TEMPLATE = "rf_migrated_template"


@pytest.fixture(scope="session")
def migrated_postgres_template(postgres_admin_url: str) -> str:
    """A database with the migrations applied once; each test copies it (CREATE DATABASE ... TEMPLATE)."""
    with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {MIGRATED_TEMPLATE}")
        connection.execute(f"CREATE DATABASE {MIGRATED_TEMPLATE}")
    url = postgres_admin_url.rsplit("/", 1)[0] + f"/{MIGRATED_TEMPLATE}"

    async def build() -> None:
        db = await open_database(url)
        try:
            await migrate(db)
        finally:
            await db.close()

    asyncio.run(build())
    return MIGRATED_TEMPLATE


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/releaseflow.db"
    fresh: Callable[..., str] = request.getfixturevalue("fresh_postgres_database")
    return fresh(template=request.getfixturevalue("migrated_postgres_template"))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await open_database(database_url)
    await migrate(database)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def fake_driver() -> FakeDriver:
    return FakeDriver()


@pytest.fixture
async def harness(
    db: Database, database_url: str, fake_driver: FakeDriver, tmp_path: Path
) -> AsyncIterator[EngineHarness]:
    # Built the way every releaseflow process is (releaseflow.application), over the fake driver.
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        worker=WorkerSettings(
            lease_seconds=3.0, heartbeat_seconds=0.3, reap_seconds=0.3, idle_poll_seconds=0.2
        ),
    )
    application = Application(settings, db, drivers=DriverRegistry({"fake": fake_driver}))
    harness = EngineHarness(db=db, engine=application.engine, worker=application.worker(), driver=fake_driver)
    try:
        yield harness
    finally:
        await harness.stop_worker()

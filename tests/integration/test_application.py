"""The application builder (``releaseflow.application``) and the HTTP app built on it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from tests.conftest import FreshPostgresDatabase

from releaseflow.api.app import create_app
from releaseflow.application import open_application
from releaseflow.domain.errors import ReleaseflowError
from releaseflow.settings import Settings
from releaseflow.store.database import Database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/empty.db"
    fresh: FreshPostgresDatabase = request.getfixturevalue("fresh_postgres_database")
    return fresh()


async def test_open_application__refuses_a_database_that_needs_migrations(
    empty_database_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=empty_database_url)

    with pytest.raises(ReleaseflowError, match=r"needs \d+ migration"):
        async with open_application(settings):
            pass
    async with open_application(settings, require_schema=False) as application:
        assert application.db.dialect in ("sqlite", "postgresql")


async def test_open_application__drivers_come_from_the_settings(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    local_only = Settings(data_dir=tmp_path, database_url=database_url)
    with_docker = Settings(data_dir=tmp_path, database_url=database_url, docker_host="unix:///nowhere.sock")

    async with open_application(local_only) as application:
        assert application.drivers.names() == ["local"]
        assert application.worker().drivers is application.drivers
    async with open_application(with_docker) as application:
        assert application.drivers.names() == ["docker", "local"]


async def health(app: FastAPI) -> dict[str, str]:
    """``/healthz`` of an app started as uvicorn starts it (lifespan first)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://releaseflow") as client:
            answer: dict[str, str] = (await client.get("/healthz")).json()
            return answer


async def test_create_app__takes_its_settings_from_the_caller_not_the_environment(
    db: Database, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the command line used to export for the server to read back.
    monkeypatch.setenv("RELEASEFLOW_SERVE_WORKER", "0")
    monkeypatch.setenv("RELEASEFLOW_DATABASE_URL", f"sqlite://{tmp_path}/elsewhere/none.db")
    settings = Settings(data_dir=tmp_path, database_url=database_url)

    served = await health(create_app(settings))
    http_only = await health(create_app(settings, with_worker=False))

    assert (served["database"], served["worker"]) == ("reachable", "alive")
    assert (http_only["database"], http_only["worker"]) == ("reachable", "not in this process")

"""One place builds a releaseflow process from its settings: database, engine, drivers and worker.

The command line (every command, ``serve`` and ``worker`` included), the HTTP app and the tests open
an ``Application`` here instead of wiring the parts by hand, so a process is put together the same
way wherever it starts. It sits below the interfaces and above the engine (docs/architecture.md).

A command imports only what it uses (the CLI's start-up budget): the drivers and the worker, with
their imports, are built only when asked for; a read command opens the database and nothing else.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from releaseflow.domain.errors import ReleaseflowError
from releaseflow.engine.clock import Clock, SystemClock
from releaseflow.engine.secrets import SecretBox, data_dir_box
from releaseflow.engine.templates import TemplateCache
from releaseflow.settings import Settings
from releaseflow.store.database import Database, open_database
from releaseflow.store.files import private_directory
from releaseflow.store.migrate import pending_migrations

if TYPE_CHECKING:
    from releaseflow.engine.commands import Engine
    from releaseflow.engine.worker import Worker
    from releaseflow.platform.driver import DriverRegistry


class Application:
    """The parts of one releaseflow process over one open database."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        clock: Clock | None = None,
        drivers: DriverRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self._drivers = drivers

    @functools.cached_property
    def drivers(self) -> DriverRegistry:
        """The drivers given, else the standard ones of the settings (``local``; ``docker`` with a host)."""
        return self._drivers if self._drivers is not None else standard_drivers(self.settings)

    @functools.cached_property
    def engine(self) -> Engine:
        from releaseflow.engine.commands import Engine

        return Engine(self.db, self.clock, TemplateCache(secrets=self.secrets))

    @functools.cached_property
    def secrets(self) -> SecretBox:
        """The key of secret run arguments: a file in the data directory, made on first use."""
        return data_dir_box(self.settings.data_dir)

    def worker(self, *, worker_id: str | None = None) -> Worker:
        """A new worker over this database and these drivers (it starts and stops the drivers)."""
        from releaseflow.engine.executors import default_executors
        from releaseflow.engine.worker import Worker

        return Worker(
            self.db,
            default_executors(self.drivers),
            self.clock,
            self.settings.worker,
            worker_id=worker_id,
            drivers=self.drivers,
            templates=TemplateCache(secrets=self.secrets),
        )


@asynccontextmanager
async def open_application(
    settings: Settings,
    *,
    require_schema: bool = True,
    clock: Clock | None = None,
    drivers: DriverRegistry | None = None,
) -> AsyncIterator[Application]:
    """Open the configured database and build the process on it; the database closes on leaving.

    By default a database whose schema is not up to date is refused (``serve`` migrates first).
    """
    db = await open_database(settings.database_url)
    try:
        if require_schema:
            missing = await pending_migrations(db)
            if missing:
                raise ReleaseflowError(
                    f"the database needs {len(missing)} migration(s): run `releaseflow db migrate`"
                    " (`releaseflow serve` migrates too)"
                )
        yield Application(settings, db, clock=clock, drivers=drivers)
    finally:
        await db.close()


def managed_addons_folder(settings: Settings) -> Path:
    """Where the local driver of these settings keeps its managed PostgreSQL clusters."""
    from releaseflow.platform.available import managed_addons_root

    return managed_addons_root(settings.data_dir / "local")


def standard_drivers(settings: Settings) -> DriverRegistry:
    """The platform drivers of these settings: ``local`` always, ``docker`` when a host is set.

    Their state folders are created private (0700), inside a private data directory; see
    ``store.files``. One exception: as root, with a data directory every user may enter, the local
    driver's managed PostgreSQL runs as the ``postgres`` user inside its folder, which must then stay
    enterable (``platform.available.managed_addons_root``).
    """
    from releaseflow.platform.available import managed_addons_root
    from releaseflow.platform.available import standard_drivers as build

    private_directory(settings.data_dir)
    local = settings.data_dir / "local"
    if os.geteuid() != 0 or not managed_addons_root(local).is_relative_to(local.resolve()):
        private_directory(local)
    if settings.docker_host:
        private_directory(settings.data_dir / "docker")
    return build(
        settings.data_dir,
        docker_host=settings.docker_host,
        docker_registry=settings.docker_registry,
        docker_credentials_file=settings.docker_credentials_file,
    )

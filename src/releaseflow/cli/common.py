"""What every command shares: exit codes, opening the database, running a coroutine.

Every command module imports what its handlers use inside those handlers (here too): building the
parser, printing ``--help`` and reading a run must not pay for the engine, the drivers or the server.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from releaseflow.domain.errors import ReleaseflowError

if TYPE_CHECKING:
    from releaseflow.settings import Settings
    from releaseflow.store.database import Database

EXIT_OK = 0
# A run failed or was aborted, a file is invalid, the request conflicts with the current state.
EXIT_FAILED = 1
# The command line itself is wrong (unknown project, malformed --arg, ...): fix the command.
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

T = TypeVar("T")
# What ``add_subparsers`` returns; argparse has no public name for it.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coroutine)


class UsageError(ReleaseflowError):
    """The command line asks for something the command cannot do (exit 2): one line says what."""


class NoDataError(ReleaseflowError):
    """A command that reads releaseflow's data was run where there is none."""


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL; None for any other database."""
    prefix = "sqlite:///"
    return Path(database_url[len(prefix) :]) if database_url.startswith(prefix) else None


def require_existing_data(settings: Settings) -> None:
    """Refuse to read from a SQLite database that does not exist (opening it would create it empty)."""
    path = sqlite_path(settings.database_url)
    if path is None or path.exists():
        return
    raise NoDataError(
        f"no releaseflow data here: {path} does not exist (data directory {settings.data_dir}).\n"
        "Point releaseflow at its data: RELEASEFLOW_DATA_DIR=/path/to/data releaseflow ..., or"
        " releaseflow --data-dir /path/to/data ... (or RELEASEFLOW_DATABASE_URL / --database-url).\n"
        "To start afresh here: releaseflow serve, releaseflow demo or releaseflow apply -f FILE create it."
    )


@asynccontextmanager
async def database(
    settings: Settings, *, require_schema: bool = True, create: bool = False
) -> AsyncIterator[Database]:
    """The configured database; by default refuses one whose schema is not up to date, and (unless
    ``create``) a SQLite file that does not exist yet rather than creating an empty one."""
    from releaseflow.store.database import open_database
    from releaseflow.store.migrate import migrate, pending_migrations

    path = sqlite_path(settings.database_url)
    fresh = path is not None and not path.exists()
    if not create:
        require_existing_data(settings)
    db = await open_database(settings.database_url)
    try:
        if fresh and require_schema:
            # A database this command just created holds nothing to protect: give it its schema.
            await migrate(db)
        elif require_schema:
            missing = await pending_migrations(db)
            if missing:
                raise ReleaseflowError(
                    f"the database needs {len(missing)} migration(s): run `releaseflow db migrate`"
                    " (`releaseflow serve` migrates too)"
                )
        yield db
    finally:
        await db.close()


def redact_url(url: str) -> str:
    """A database URL fit to print: the password, if any, replaced by ***."""
    scheme, separator, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not separator or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def stage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", help="pipeline id")
    parser.add_argument("stage", help="stage name (any case)")
    parser.add_argument("--project", help="project id (default: the only project)")

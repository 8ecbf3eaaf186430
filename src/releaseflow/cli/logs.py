"""Logs the drivers keep: of a service, a job run or a build (the tail, or following it).

Locally the driver named by ``--driver`` is read; through a server, the record that made the log
(``GET records``) says which driver keeps it, and the server reads it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from releaseflow.cli.common import EXIT_OK, Subparsers, UsageError, run_async
from releaseflow.domain.errors import NotFoundError
from releaseflow.platform.driver import LogSource

if TYPE_CHECKING:
    from releaseflow.settings import Settings

# Enough to read a whole log when following it; logs only grow, so new lines are those past the count.
WHOLE = 1_000_000
FOLLOW_POLL_SECONDS = 0.5

# The last ``lines`` lines of the log asked for.
TailReader = Callable[[int], Awaitable[list[str]]]


def register(commands: Subparsers) -> None:
    logs = commands.add_parser("logs", help="the log of a service, job run or build")
    logs.add_argument("what", choices=[source.value for source in LogSource])
    logs.add_argument("id", help="a service id, a job run id (run-...) or a build id (bld-...)")
    logs.add_argument(
        "-n", "--lines", type=int, default=100, help="how many lines from the end (default 100)"
    )
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops; local only)"
    )
    logs.add_argument(
        "--driver", default="local", help="the driver that ran it (default: local; a server knows it)"
    )
    logs.add_argument("--project", help="through a server: the project, when the token acts in several")
    logs.set_defaults(handler=show_logs, remote=True)


def show_logs(args: argparse.Namespace, settings: Settings) -> int:
    if args.follow and args.target is not None:
        # A server answers a bounded tail (api/records.py): new lines past it cannot be told apart.
        raise UsageError("releaseflow logs --follow cannot act through a server: read the tail again")

    async def go() -> None:
        async with log_reader(args, settings) as read:
            for line in await unknown_as_one_message(args, read(args.lines)):
                print(line)
            if not args.follow:
                return
            seen = len(await read(WHOLE))
            while True:
                await asyncio.sleep(FOLLOW_POLL_SECONDS)
                lines = await read(WHOLE)
                for line in lines[seen:]:
                    print(line, flush=True)
                seen = len(lines)

    run_async(go())
    return EXIT_OK


async def unknown_as_one_message(args: argparse.Namespace, reading: Awaitable[list[str]]) -> list[str]:
    """The log, or one message for an id nothing knows, the same locally and through a server
    (a local driver and the server's records would each say it their own way)."""
    try:
        return await reading
    except NotFoundError:
        raise NotFoundError(f"no {args.what} '{args.id}' with a log releaseflow can read") from None


@asynccontextmanager
async def log_reader(args: argparse.Namespace, settings: Settings) -> AsyncIterator[TailReader]:
    source = LogSource(args.what)
    if args.target is not None:
        from releaseflow.cli.backend import open_backend
        from releaseflow.cli.remote_backend import RemoteBackend

        async with open_backend(args.target, settings) as backend:
            assert isinstance(backend, RemoteBackend)  # a target opens a server's backend
            project = await backend.project(args.project)

            async def remote_tail(lines: int) -> list[str]:
                return await backend.log_tail(project, source, args.id, lines)

            yield remote_tail
        return
    from releaseflow.application import standard_drivers
    from releaseflow.engine.logs import read_logs

    drivers = standard_drivers(settings)

    async def local_tail(lines: int) -> list[str]:
        return await read_logs(drivers, args.driver, source, args.id, lines=lines)

    yield local_tail

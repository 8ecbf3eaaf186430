"""Logs the drivers keep: of a service, a job run or a build (the tail, or following it).

Locally the driver named by ``--driver`` is read; through a server, the record that made the log
(``GET records``) says which driver keeps it, and the server reads it. Following reads the log's
lines numbered from its start (``LogLines``; through a server ``GET records/{id}/log/lines``), so the
lines past the last one printed are told apart exactly, however long the log.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from releaseflow.cli.common import EXIT_OK, Subparsers, run_async
from releaseflow.cli.counts import count
from releaseflow.domain.errors import NotFoundError
from releaseflow.platform.driver import MOST_LOG_LINES, LogLines, LogSource

if TYPE_CHECKING:
    from releaseflow.settings import Settings

T = TypeVar("T")

FOLLOW_POLL_SECONDS = 0.5
# How many new lines a follower asks for at once; it asks again at once when it got as many.
FOLLOW_BATCH = 1000

# The last ``lines`` lines of the log asked for (a last line without its newline yet included).
TailReader = Callable[[int], Awaitable[list[str]]]
# Its complete lines numbered from its start: at most ``limit`` past line ``after``, or its last ``limit``.
LinesReader = Callable[[int | None, int], Awaitable[LogLines]]


@dataclass(frozen=True)
class LogReading:
    tail: TailReader
    lines: LinesReader


def register(commands: Subparsers) -> None:
    logs = commands.add_parser("logs", help="the log of a service, job run or build")
    logs.add_argument("what", choices=[source.value for source in LogSource])
    logs.add_argument("id", help="a service id, a job run id (run-...) or a build id (bld-...)")
    logs.add_argument(
        "-n",
        "--lines",
        type=count(MOST_LOG_LINES),
        default=100,
        help="how many lines from the end (default 100)",
    )
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing lines as they are written (Ctrl-C stops)"
    )
    logs.add_argument(
        "--driver", default="local", help="the driver that ran it (default: local; a server knows it)"
    )
    logs.add_argument("--project", help="through a server: the project, when the token acts in several")
    logs.set_defaults(handler=show_logs, remote=True)


def show_logs(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> None:
        async with log_reader(args, settings) as read:
            if args.follow:
                await follow(args, read.lines)
                return
            for line in await unknown_as_one_message(args, read.tail(args.lines)):
                print(line)

    run_async(go())
    return EXIT_OK


async def follow(args: argparse.Namespace, read_lines: LinesReader) -> None:
    """Print the log's last lines, then every line written after them, each once and as it comes,
    until Ctrl-C. Lines are numbered from the log's start (locally and through a server alike): the
    next read asks for those past the last one printed, so nothing is printed twice or skipped, and
    a line is printed once its writer has ended it."""
    page = await unknown_as_one_message(args, read_lines(None, args.lines))
    position = page.first - 1
    while True:
        for line in page.lines:
            print(line, flush=True)
        position += len(page.lines)
        if len(page.lines) < FOLLOW_BATCH:
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
        page = await read_lines(position, FOLLOW_BATCH)


async def unknown_as_one_message(args: argparse.Namespace, reading: Awaitable[T]) -> T:
    """The log, or one message for an id nothing knows, the same locally and through a server
    (a local driver and the server's records would each say it their own way)."""
    try:
        return await reading
    except NotFoundError:
        raise NotFoundError(f"no {args.what} '{args.id}' with a log releaseflow can read") from None


@asynccontextmanager
async def log_reader(args: argparse.Namespace, settings: Settings) -> AsyncIterator[LogReading]:
    source = LogSource(args.what)
    if args.target is not None:
        from releaseflow.cli.backend import open_backend
        from releaseflow.cli.remote_backend import RemoteBackend

        async with open_backend(args.target, settings) as backend:
            assert isinstance(backend, RemoteBackend)  # a target opens a server's backend
            project = await backend.project(args.project)

            async def remote_tail(lines: int) -> list[str]:
                return await backend.log_tail(project, source, args.id, lines)

            async def remote_lines(after: int | None, limit: int) -> LogLines:
                return await backend.log_lines(project, source, args.id, after=after, limit=limit)

            yield LogReading(remote_tail, remote_lines)
        return
    from releaseflow.application import standard_drivers
    from releaseflow.engine.logs import read_log_lines, read_logs

    drivers = standard_drivers(settings)

    async def local_tail(lines: int) -> list[str]:
        return await read_logs(drivers, args.driver, source, args.id, lines=lines)

    async def local_lines(after: int | None, limit: int) -> LogLines:
        return await read_log_lines(drivers, args.driver, source, args.id, after=after, limit=limit)

    yield LogReading(local_tail, local_lines)

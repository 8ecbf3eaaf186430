"""Logs the drivers keep: of a service, a job run or a build (the tail, or following it)."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from releaseflow.cli.common import EXIT_OK, Subparsers, run_async
from releaseflow.platform.driver import LogSource

if TYPE_CHECKING:
    from releaseflow.settings import Settings

# Enough to read a whole log when following it; logs only grow, so new lines are those past the count.
WHOLE = 1_000_000
FOLLOW_POLL_SECONDS = 0.5


def register(commands: Subparsers) -> None:
    logs = commands.add_parser("logs", help="the log of a service, job run or build")
    logs.add_argument("what", choices=[source.value for source in LogSource])
    logs.add_argument("id", help="a service id, a job run id (run-...) or a build id (bld-...)")
    logs.add_argument(
        "-n", "--lines", type=int, default=100, help="how many lines from the end (default 100)"
    )
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    logs.add_argument("--driver", default="local", help="the driver that ran it (default: local)")
    logs.set_defaults(
        handler=show_logs, local_only="the server has no route for logs yet: run it on its machine"
    )


def show_logs(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.application import standard_drivers
    from releaseflow.engine.logs import read_logs

    drivers = standard_drivers(settings)
    source = LogSource(args.what)

    async def go() -> None:
        for line in await read_logs(drivers, args.driver, source, args.id, lines=args.lines):
            print(line)
        seen = len(await read_logs(drivers, args.driver, source, args.id, lines=WHOLE))
        while args.follow:
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
            lines = await read_logs(drivers, args.driver, source, args.id, lines=WHOLE)
            for line in lines[seen:]:
                print(line, flush=True)
            seen = len(lines)

    run_async(go())
    return EXIT_OK

"""Logs the local driver keeps: of a service, a job run or a build (the tail, or following it)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from releaseflow.cli.common import EXIT_OK, Subparsers, run_async
from releaseflow.domain.errors import NotFoundError

if TYPE_CHECKING:
    from releaseflow.platform.local.driver import LocalDriver
    from releaseflow.settings import Settings

# Enough to read a whole log when following it; logs only grow, so new lines are those past the count.
WHOLE = 1_000_000


def register(commands: Subparsers) -> None:
    logs = commands.add_parser("logs", help="the log of a local service, job run or build")
    logs.add_argument("what", choices=("service", "job-run", "build"))
    logs.add_argument("id", help="a service id, a job run id (run-...) or a build id (bld-...)")
    logs.add_argument(
        "-n", "--lines", type=int, default=100, help="how many lines from the end (default 100)"
    )
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    logs.set_defaults(handler=show_logs)


def show_logs(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.platform.local.driver import LocalDriver
    from releaseflow.platform.local.processes import tail

    driver = settings.drivers().get("local")
    assert isinstance(driver, LocalDriver)
    path = log_path(driver, args.what, args.id)
    if not path.exists():
        raise NotFoundError(f"no log for {args.what} '{args.id}' on this host ({path})")
    for line in tail(path, args.lines):
        print(line)
    seen = len(tail(path, WHOLE))
    while args.follow:
        time.sleep(0.5)
        lines = tail(path, WHOLE)
        for line in lines[seen:]:
            print(line, flush=True)
        seen = len(lines)
    return EXIT_OK


def log_path(driver: LocalDriver, what: str, key: str) -> Path:
    if what == "service":
        return driver.services.log_path(key)
    if what == "job-run":
        return driver.jobs.log_path(key)
    return Path(run_async(driver.builds.get_build(key)).log_path)

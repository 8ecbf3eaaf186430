"""``releaseflow resume RUN``: a new run of a failed run that keeps what succeeded there."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from releaseflow.cli import render
from releaseflow.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Subparsers, database, run_async
from releaseflow.cli.parsing import add_run_inputs, parse_run_inputs
from releaseflow.domain.statuses import RunStatus

if TYPE_CHECKING:
    from releaseflow.settings import Settings


def register(commands: Subparsers) -> None:
    resume = commands.add_parser(
        "resume",
        help="resume a failed run from its failed node: the nodes that succeeded are kept, not run again",
    )
    resume.add_argument("run", help="the failed run: its id, or a unique start of it")
    resume.add_argument("--name", help="display name of the new run (up to 39 characters)")
    resume.add_argument("--description", default="", help="description of the new run")
    add_run_inputs(resume)
    resume.add_argument("--follow", action="store_true", help="show the new run live until it ends")
    resume.set_defaults(handler=resume_run)


def resume_run(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.cli.follow import follow_run
    from releaseflow.engine import queries
    from releaseflow.engine.clock import SystemClock
    from releaseflow.engine.commands import Engine, RunRequest

    arguments, overrides, release_overrides = parse_run_inputs(args.arg, args.override, args.release_override)
    edits = RunRequest(
        name=args.name,
        description=args.description,
        arguments=arguments,
        overrides=overrides,
        release_node_overrides=release_overrides,
        triggered_by="cli",
    )

    async def go() -> int:
        async with database(settings) as db:
            failed = await queries.resolve_run_id(db, args.run)
            run = await Engine(db, SystemClock()).resume_run(failed, edits)
            print(f"started run {run.id} (resumes {failed}): {run.status}", flush=True)
            if args.follow:
                final = await follow_run(db, run.id)
                return EXIT_OK if final is RunStatus.SUCCESS else EXIT_FAILED
            if run.status is RunStatus.FAILED:
                for line in render.untrusted(run.error or "", multiline=True).splitlines():
                    print(line)
                return EXIT_FAILED
            print(f"follow it with: releaseflow show {render.short_id(run.id)}")
            return EXIT_OK

    try:
        return run_async(go())
    except KeyboardInterrupt:
        print("\nstopped following; the run goes on (releaseflow abort RUN stops it)", file=sys.stderr)
        return EXIT_INTERRUPTED

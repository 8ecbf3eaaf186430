"""``releaseflow resume RUN``: a new run of a failed run that keeps what succeeded there."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from releaseflow.cli.backend import open_backend
from releaseflow.cli.common import Subparsers
from releaseflow.cli.parsing import add_run_inputs
from releaseflow.cli.runs import following, report_started, run_request

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
    resume.set_defaults(handler=resume_run, remote=True)


def resume_run(args: argparse.Namespace, settings: Settings) -> int:
    edits = run_request(args)

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            started = await backend.resume_run(args.run, edits)
            message = f"started run {started.run.id} (resumes {started.run.resumed_from})"
            return await report_started(backend, started, message, follow=args.follow)

    return following(go())

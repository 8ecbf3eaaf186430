"""Reading release flows: every change is a version, and old versions stay readable."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from releaseflow.cli.backend import open_backend
from releaseflow.cli.common import EXIT_OK, Subparsers, run_async
from releaseflow.cli.render import untrusted

if TYPE_CHECKING:
    from releaseflow.settings import Settings


def register(commands: Subparsers) -> None:
    flow = commands.add_parser(
        "flow", help="print a stage's release flow (a version of it), or list its versions"
    )
    flow.add_argument("pipeline")
    flow.add_argument("stage")
    flow.add_argument("--project", help="the project (default: the only one)")
    choice = flow.add_mutually_exclusive_group()
    choice.add_argument("--version", type=int, help="print this version instead of the current one")
    choice.add_argument("--versions", action="store_true", help="list every version with its origin and date")
    flow.set_defaults(handler=show_flow, remote=True)


def show_flow(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.wire.runs import iso

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            project = await backend.project(args.project)
            stage = await backend.stage(project, args.pipeline, args.stage)
            if args.versions:
                for view in await backend.flow_versions(project, args.pipeline, stage):
                    marker = "*" if view.current else " "
                    print(f"{marker} v{view.version:<4} {iso(view.created_at)}  {untrusted(view.origin)}")
                return EXIT_OK
            view = await backend.flow_version(project, args.pipeline, stage, args.version)
        print(json.dumps(view.document, indent=2))
        return EXIT_OK

    return run_async(go())

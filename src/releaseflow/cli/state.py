"""Release state: what each service and job of a stage runs, and which run deployed it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from releaseflow.cli.backend import open_backend
from releaseflow.cli.common import EXIT_OK, Subparsers, run_async
from releaseflow.cli.counts import count
from releaseflow.cli.render import moment, short_id, table, untrusted

if TYPE_CHECKING:
    from releaseflow.engine.queries import ReleaseView
    from releaseflow.settings import Settings


def register(commands: Subparsers) -> None:
    state = commands.add_parser(
        "state", help="what each service and job of a pipeline runs now, stages side by side (or one stage)"
    )
    state.add_argument("pipeline")
    state.add_argument("stage", nargs="?", help="one stage (default: every stage)")
    state.add_argument("--project", help="the project (default: the only one)")
    state.add_argument("--history", action="store_true", help="every deploy, newest first")
    state.add_argument("--limit", type=count(), default=50, help="with --history: how many deploys")
    state.add_argument("--json", action="store_true", help="print JSON")
    state.set_defaults(handler=show_state, remote=True)


def describe(artifact: Mapping[str, Any]) -> str:
    """One line for an artifact: the image, or build id, commit and branch of a build."""
    if artifact.get("kind") == "image":
        return str(artifact.get("image", "?"))
    build = f"{artifact.get('buildService', '?')}:{artifact.get('buildId', '?')}"
    return f"{build} {str(artifact.get('commit', ''))[:10]} ({artifact.get('branch', '?')})"


def state_lines(views: Sequence[ReleaseView]) -> list[str]:
    """The release state as a table, in the order given (stages in pipeline order), local times."""
    rows = [
        [
            view.stage,
            view.resource_id,
            untrusted(describe(view.artifact)),
            short_id(view.run_id),
            moment(view.deployed_at) if view.deployed_at else "-",
        ]
        for view in views
    ]
    return table(["STAGE", "RESOURCE", "ARTIFACT", "RUN", "DEPLOYED"], rows)


def show_state(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.wire.state import release

    if not (args.stage or args.history or args.json):
        from releaseflow.cli.insights import print_comparison

        async def side_by_side() -> int:
            async with open_backend(args.target, settings) as backend:
                await print_comparison(backend, args.project, args.pipeline)
            return EXIT_OK

        return run_async(side_by_side())

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            project = await backend.project(args.project)
            stage = await backend.stage(project, args.pipeline, args.stage) if args.stage else None
            views = await backend.release_state(
                project, args.pipeline, stage, history=args.history, limit=args.limit
            )
        if args.json:
            print(json.dumps([release(view) for view in views], indent=2))
            return EXIT_OK
        if not views:
            print("nothing has been deployed yet")
            return EXIT_OK
        print("\n".join(state_lines(views)))
        return EXIT_OK

    return run_async(go())

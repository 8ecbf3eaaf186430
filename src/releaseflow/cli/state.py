"""Release state: what each service and job of a stage runs, and which run deployed it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from releaseflow.cli.common import EXIT_OK, Subparsers, database, run_async
from releaseflow.engine import queries
from releaseflow.settings import Settings
from releaseflow.wire.runs import iso
from releaseflow.wire.state import release


def register(commands: Subparsers) -> None:
    state = commands.add_parser("state", help="what each service and job of a pipeline (or stage) runs now")
    state.add_argument("pipeline")
    state.add_argument("stage", nargs="?", help="one stage (default: every stage)")
    state.add_argument("--project", help="the project (default: the only one)")
    state.add_argument("--history", action="store_true", help="every deploy, newest first")
    state.add_argument("--limit", type=int, default=50, help="with --history: how many deploys")
    state.add_argument("--json", action="store_true", help="print JSON")
    state.set_defaults(handler=show_state)


def describe(artifact: Mapping[str, Any]) -> str:
    """One line for an artifact: the image, or build id, commit and branch of a build."""
    if artifact.get("kind") == "image":
        return str(artifact.get("image", "?"))
    build = f"{artifact.get('buildService', '?')}:{artifact.get('buildId', '?')}"
    return f"{build} {str(artifact.get('commit', ''))[:10]} ({artifact.get('branch', '?')})"


def show_state(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with database(settings) as db:
            project = await queries.resolve_project(db, args.project)
            stage = (
                await queries.resolve_stage(db, project, args.pipeline, args.stage) if args.stage else None
            )
            views = await queries.release_state(
                db, project, args.pipeline, stage, history=args.history, limit=args.limit
            )
        if args.json:
            print(json.dumps([release(view) for view in views], indent=2))
            return EXIT_OK
        if not views:
            print("nothing has been deployed yet")
            return EXIT_OK
        print(f"{'STAGE':<12} {'RESOURCE':<20} {'ARTIFACT':<48} {'RUN':<9} DEPLOYED")
        for view in views:
            print(
                f"{view.stage:<12} {view.resource_id:<20} {describe(view.artifact):<48} "
                f"{view.run_id[:8]:<9} {iso(view.deployed_at)}"
            )
        return EXIT_OK

    return run_async(go())

"""Pipelines and their release headers: pipelines, status."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from releaseflow.cli import render
from releaseflow.cli.backend import open_backend
from releaseflow.cli.common import EXIT_OK, Subparsers, run_async

if TYPE_CHECKING:
    from releaseflow.engine.history import PipelineOverview, StageHeader
    from releaseflow.settings import Settings


def register(commands: Subparsers) -> None:
    pipelines = commands.add_parser("pipelines", help="the pipelines, with a release header per stage")
    pipelines.add_argument("--project", help="project id (default: the only project)")
    pipelines.set_defaults(handler=list_pipelines, remote=True)
    status = commands.add_parser(
        "status", help="a pipeline's stages: current run, pin, what runs where, what to do next"
    )
    status.add_argument("pipeline", help="pipeline id")
    status.add_argument("--project", help="project id (default: the only project)")
    status.set_defaults(handler=pipeline_status, remote=True)


def header_lines(header: StageHeader) -> list[str]:
    """A stage's release header: its run (current or most recent), the pin, the next step."""
    if header.run is None:
        run = "no runs yet" if header.has_flow else "no release flow"
    else:
        which = "current" if header.active else "last"
        run = (
            f"{which} run {render.run_label(header.run.id, header.run.display_name)}"
            f" {header.run.kind} {header.run.status} ({render.untrusted(render.origin_text(header.run))},"
            f" {render.moment(header.run.created_at)})"
        )
    pin = f"PINNED {render.untrusted(header.pin.summary())}" if header.pin else "not pinned"
    lines = [f"  {header.stage}: {run}", f"    {pin}"]
    for skipped in header.skipped:
        lines.append(f"    skipped {render.moment(skipped.at)}: {render.untrusted(skipped.reason)}")
    lines.append(f"    next: {header.next_step}")
    return lines


def overview_lines(overview: PipelineOverview) -> list[str]:
    lines = [f"{overview.project_id}/{overview.pipeline_id} ({render.untrusted(overview.name)})"]
    for header in overview.stages:
        lines.extend(header_lines(header))
    return lines


def list_pipelines(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            project = await backend.project(args.project)
            found = await backend.pipelines(project)
        if not found:
            print(f"project {project} has no pipelines yet")
        for overview in found:
            print("\n".join(overview_lines(overview)))
        return EXIT_OK

    return run_async(go())


def pipeline_status(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.cli.state import state_lines

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            project = await backend.project(args.project)
            overview = await backend.pipeline_status(project, args.pipeline)
            views = await backend.release_state(project, args.pipeline, None)
        print("\n".join(overview_lines(overview)))
        print("\nwhat runs where:")
        print("\n".join(state_lines(views)) if views else "  nothing has been deployed yet")
        return EXIT_OK

    return run_async(go())

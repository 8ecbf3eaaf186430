"""Triggers: a stage's trigger log and webhook URL, and rotating that URL."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from releaseflow.cli import render
from releaseflow.cli.backend import open_backend
from releaseflow.cli.common import EXIT_OK, Subparsers, run_async, stage_arguments
from releaseflow.cli.counts import count

if TYPE_CHECKING:
    from releaseflow.settings import Settings


def register(commands: Subparsers) -> None:
    log = commands.add_parser(
        "triggers",
        help="what git pushes and webhook calls asked of a stage, what came of it, and its webhook URL",
    )
    stage_arguments(log)
    log.add_argument("--limit", type=count(), default=20, help="how many requests to show (default 20)")
    log.set_defaults(handler=show_triggers, remote=True)
    webhook = commands.add_parser("webhook", help="a stage's webhook URL")
    actions = webhook.add_subparsers(dest="action", required=True, metavar="ACTION")
    rotate = actions.add_parser(
        "rotate", help="make a new webhook URL for the stage (the old one stops working)"
    )
    stage_arguments(rotate)
    rotate.set_defaults(handler=rotate_webhook, remote=True)


def show_triggers(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            project = await backend.project(args.project)
            stage = await backend.stage(project, args.pipeline, args.stage)
            url, entries = await backend.trigger_log(project, args.pipeline, stage, args.limit)
        if url is None:
            print(f"webhook: none yet (make one: releaseflow webhook rotate {args.pipeline} {stage})")
        else:
            print(f"webhook: {url}")
        if not entries:
            print("no trigger requests yet")
        for entry in entries:
            run = f" run {entry.run_id}" if entry.run_id else ""
            print(
                f"{render.moment(entry.at)}  {entry.decision:<8} {entry.source:<8}"
                f" {render.untrusted(entry.request)}{run}"
            )
            print(f"    {render.untrusted(entry.reason, multiline=True)}")
        return EXIT_OK

    return run_async(go())


def rotate_webhook(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            project = await backend.project(args.project)
            stage = await backend.stage(project, args.pipeline, args.stage)
            url = await backend.rotate_webhook(project, args.pipeline, stage)
        print(url)
        return EXIT_OK

    return run_async(go())

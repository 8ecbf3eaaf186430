"""Commands on runs: run, runs, show, abort, rename, approve, reject."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from releaseflow.cli import render
from releaseflow.cli.backend import RunsQuery, open_backend
from releaseflow.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Subparsers,
    run_async,
    stage_arguments,
)
from releaseflow.cli.counts import count
from releaseflow.cli.parsing import add_run_inputs, parse_arguments, parse_run_inputs
from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.statuses import RunStatus

if TYPE_CHECKING:
    from releaseflow.cli.backend import Backend
    from releaseflow.engine.commands import RunRequest
    from releaseflow.engine.queries import RunDetail
    from releaseflow.settings import Settings

# The engine is imported by the commands that change runs, not by those that only read them.


def register(commands: Subparsers) -> None:
    run = commands.add_parser("run", help="start a run of a stage's release flow")
    stage_arguments(run)
    run.add_argument("--name", help="display name of the run (up to 39 characters)")
    run.add_argument("--description", default="", help="description of the run (up to 200 characters)")
    add_run_inputs(run)
    run.add_argument("--follow", action="store_true", help="show the run live until it ends")
    run.set_defaults(handler=start, remote=True)

    runs = commands.add_parser("runs", help="list the runs of a stage, newest first")
    stage_arguments(runs)
    runs.add_argument("--status", action="append", default=[], choices=[str(status) for status in RunStatus])
    runs.add_argument("--kind", choices=["release", "rollback"])
    runs.add_argument(
        "--origin", choices=["person", "token", "git", "webhook", "rollback"], help="started by"
    )
    ended = runs.add_mutually_exclusive_group()
    ended.add_argument("--concluded", action="store_true", default=None, help="only runs that ended")
    ended.add_argument("--unfinished", dest="concluded", action="store_false", help="only runs not ended")
    runs.add_argument(
        "--before", type=int, metavar="CURSOR", help="the next page (the cursor a page printed)"
    )
    runs.add_argument("--limit", type=count(), default=20, help="at most this many runs (default 20)")
    runs.add_argument("--json", action="store_true", help="print the runs as JSON")
    runs.set_defaults(handler=list_runs, remote=True)

    show = commands.add_parser("show", help="show a run: its tree of workflows and nodes, with statuses")
    show.add_argument("run", help="run id, or a unique start of it")
    show.add_argument(
        "--json", action="store_true", help="print the run detail as JSON (with node responses)"
    )
    show.add_argument("--events", action="store_true", help="also print the run's event log")
    show.add_argument("--plan", action="store_true", help="print the plan the run was started with")
    show.set_defaults(handler=show_run, remote=True)

    abort = commands.add_parser("abort", help="abort a run")
    abort.add_argument("run", help="run id, or a unique start of it")
    abort.set_defaults(handler=abort_run, remote=True)

    rename = commands.add_parser("rename", help="change a run's display name or description")
    rename.add_argument("run", help="run id, or a unique start of it")
    rename.add_argument("--name", help="new display name ('' removes it: the run shows its id)")
    rename.add_argument("--description", help="new description")
    rename.set_defaults(handler=rename_run, remote=True)

    approve = commands.add_parser("approve", help="approve an Approval node that is waiting")
    approve.add_argument("run", help="run id, or a unique start of it")
    approve.add_argument("node", help="the node's ref (or path)")
    approve.add_argument("--as", dest="approver", required=True, metavar="NAME", help="who approves")
    approve.add_argument("--comment", default="", help="why (recorded with the approval)")
    approve.set_defaults(handler=approve_node, remote=True)
    reject = commands.add_parser("reject", help="reject an Approval node that is waiting (it fails)")
    reject.add_argument("run", help="run id, or a unique start of it")
    reject.add_argument("node", help="the node's ref (or path)")
    reject.add_argument("--as", dest="approver", required=True, metavar="NAME", help="who rejects")
    reject.add_argument("--reason", dest="comment", default="", help="why (the node's error says it)")
    reject.set_defaults(handler=approve_node, reject=True, remote=True)


def run_request(args: argparse.Namespace) -> RunRequest:
    """The run request the flags of ``run`` (or ``resume``, ``plan``) ask for: a run by hand."""
    from releaseflow.cli.rollback import current_user
    from releaseflow.domain.run_origin import RunOrigin
    from releaseflow.engine.commands import RunRequest

    arguments, overrides, release_overrides = parse_run_inputs(args.arg, args.override, args.release_override)
    return RunRequest(
        name=getattr(args, "name", None),
        description=getattr(args, "description", ""),
        arguments=arguments,
        secret_arguments=parse_arguments(args.secret_arg),
        overrides=overrides,
        release_node_overrides=release_overrides,
        origin=RunOrigin(by=current_user()),
    )


async def report_started(backend: Backend, started: RunDetail, message: str, *, follow: bool) -> int:
    """Say that a run started, then follow it or say how to; the exit code says how it went."""
    from releaseflow.cli.follow import follow_run
    from releaseflow.cli.rollback import run_notice_lines

    run = started.run
    print(f"{message}: {run.status}", flush=True)
    for line in run_notice_lines(started):
        print(line)
    if follow:
        final = await follow_run(backend, run.id)
        return EXIT_OK if final is RunStatus.SUCCESS else EXIT_FAILED
    if run.status is RunStatus.FAILED:
        for line in render.untrusted(run.error or "", multiline=True).splitlines():
            print(line)
        return EXIT_FAILED
    print(f"follow it with: releaseflow show {render.short_id(run.id)}")
    return EXIT_OK


def following(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run a command that may follow a run: Ctrl-C stops following, not the run."""
    try:
        return run_async(coroutine)
    except KeyboardInterrupt:
        print("\nstopped following; the run goes on (releaseflow abort RUN stops it)", file=sys.stderr)
        return EXIT_INTERRUPTED


def start(args: argparse.Namespace, settings: Settings) -> int:
    request = run_request(args)

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            project = await backend.project(args.project)
            stage = await backend.stage(project, args.pipeline, args.stage)
            started = await backend.start_run(project, args.pipeline, stage, request)
            where = f"{project}/{args.pipeline}/{stage}"
            message = f"started run {started.run.id} ({where})"
            return await report_started(backend, started, message, follow=args.follow)

    return following(go())


def list_runs(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.wire import runs as wire

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            project = await backend.project(args.project)
            stage = await backend.stage(project, args.pipeline, args.stage)
            query = RunsQuery(args.status, args.kind, args.origin, args.concluded, args.before, args.limit)
            page = await backend.runs_page(project, args.pipeline, stage, query)
            runs = page.runs
            first_errors: dict[str, str] = {}
            if not args.json:
                # A failed run records no error of its own when a node failed: show that node's.
                for run in runs:
                    if run.status is RunStatus.FAILED and not run.error:
                        detail = await backend.run_detail(run.id, with_events=False)
                        first_errors[run.id] = render.first_error(detail) or ""
        where = f"{project}/{args.pipeline}/{stage}"
        if args.json:
            print(json.dumps([wire.run_summary(run) for run in runs], indent=2))
        elif not runs and (wanted := _filters(args)):
            print(f"no run of {where} matches {' '.join(wanted)}")
        elif not runs:
            print(f"no runs of {where} yet")
        else:
            print("\n".join(render.runs_table(runs, first_errors)))
            if page.next_cursor is not None:
                print(f"older runs: add --before {page.next_cursor}")
        return EXIT_OK

    return run_async(go())


def _filters(args: argparse.Namespace) -> list[str]:
    """The filters of a runs list, as they were typed."""
    wanted = [f"--status {status}" for status in args.status]
    wanted += [f"--kind {args.kind}"] if args.kind else []
    wanted += [f"--origin {args.origin}"] if args.origin else []
    wanted += [] if args.concluded is None else ["--concluded" if args.concluded else "--unfinished"]
    return wanted


def show_run(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.cli.rollback import rollback_lines
    from releaseflow.wire import runs as wire

    if args.plan:
        from releaseflow.cli.plan import show_stored_plan

        return show_stored_plan(args, settings)

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            detail = await backend.run_detail(args.run)
            where = await rollback_lines(backend, detail.run) if detail.run.kind == "rollback" else []
        if args.json:
            print(json.dumps(wire.run_detail(detail), indent=2))
            return EXIT_OK
        colour = sys.stdout.isatty()
        print("\n".join([*render.run_header(detail, colour), *where, "", *render.run_tree(detail, colour)]))
        if args.events:
            print("\nevents:")
            for event in detail.events:
                subject = render.subject(detail, event.node_path)
                change = f"{event.from_status or '-'} -> {event.to_status}"
                print(f"  {render.clock(event.at)}  {subject}: {change}  ({render.untrusted(event.cause)})")
        return EXIT_OK

    return run_async(go())


def abort_run(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            run = await backend.abort_run(args.run)
        print(f"run {run.id}: {run.status}")
        return EXIT_OK

    return run_async(go())


def rename_run(args: argparse.Namespace, settings: Settings) -> int:
    if args.name is None and args.description is None:
        raise ValidationError(
            [Issue("rename", "give --name or --description (or both)")], subject="command line"
        )

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            run = await backend.rename_run(args.run, name=args.name, description=args.description)
        print(f"run {run.id}: name {run.display_name!r}, description {run.description!r}")
        return EXIT_OK

    return run_async(go())


def approve_node(args: argparse.Namespace, settings: Settings) -> int:
    reject = getattr(args, "reject", False)

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            run_id = await backend.decide(
                args.run, args.node, by=args.approver, comment=args.comment, reject=reject
            )
        print(f"{args.approver} {'rejected' if reject else 'approved'} {args.node} of run {run_id}")
        return EXIT_OK

    return run_async(go())

"""Plan before apply: ``releaseflow plan`` says what a run would do; ``show RUN --plan`` what a run was
started with. Both print the same plan document (``domain.run_plan``)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from releaseflow.cli.backend import open_backend
from releaseflow.cli.common import EXIT_OK, Subparsers, run_async
from releaseflow.cli.insights import short_artifact
from releaseflow.cli.parsing import add_run_inputs
from releaseflow.cli.render import short_id, table, untrusted

if TYPE_CHECKING:
    from releaseflow.settings import Settings


def register(commands: Subparsers) -> None:
    plan = commands.add_parser(
        "plan", help="what a run of a stage would do if started now (nodes, queue, deploys); starts nothing"
    )
    plan.add_argument("pipeline", help="pipeline id")
    plan.add_argument("stage", help="stage name (any case)")
    plan.add_argument("--project", help="project id (default: the only project)")
    add_run_inputs(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(handler=show_plan, remote=True)


def _admission(admission: Mapping[str, Any]) -> str:
    action = admission.get("action")
    reason = f" ({admission['reason']})" if admission.get("reason") else ""
    if action == "start":
        text = "starts at once"
    elif action == "queue":
        ahead = ", ".join(short_id(str(run)) for run in admission.get("ahead", []))
        text = f"queued at position {admission.get('position')}, behind {ahead}{reason}"
    elif action == "reject":
        text = f"refused{reason}"
    else:
        text = f"fails before any node starts{reason}"
    if admission.get("aborts"):
        text += "; aborts " + ", ".join(short_id(str(run)) for run in admission["aborts"])
    if admission.get("supersedes"):
        text += "; supersedes queued " + ", ".join(short_id(str(run)) for run in admission["supersedes"])
    return text


def _pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, sort_keys=True)}"
        for key, value in values.items()
    )


def plan_lines(plan: Mapping[str, Any]) -> list[str]:
    lines = [
        f"stage {plan.get('stage')} · release flow version {plan.get('flowVersion')}"
        f" · concurrency policy {plan.get('concurrencyPolicy')}",
        f"admission: {_admission(plan.get('admission') or {})}",
    ]
    for key, title in (
        ("arguments", "arguments"),
        ("overrides", "overrides"),
        ("releaseNodeOverrides", "release overrides"),
    ):
        if plan.get(key):
            lines.append(f"{title}: {_pairs(plan[key])}")
    lines += [f"problem: {problem}" for problem in plan.get("problems") or []]
    carried = set(plan.get("carriedOver") or [])
    lines.append("nodes:")
    for node in plan.get("nodes") or []:
        title = (
            f"{node.get('workflowType')} workflow" + (f" {node['ref']}" if node.get("ref") else "")
            if node.get("kind") == "Workflow"
            else f"{node.get('ref') or node.get('path')} ({node.get('kind')})"
        )
        notes = []
        if node.get("path") in carried:
            notes.append("carried over, not run again")
        if node.get("skip") is not None:
            notes.append(f"skipNodeExecution: {node['skip']}")
        suffix = f"  [{'; '.join(notes)}]" if notes else ""
        lines.append(f"  {'  ' * int(node.get('depth', 0))}{title}{suffix}")
    releases = plan.get("releases") or []
    if releases:
        lines.append("deploys:")
        rows = [
            [
                str(release.get("ref") or release.get("path")),
                str(release.get("target")),
                short_artifact(release.get("replaces")),
                short_artifact(release.get("deploys")) if release.get("deploys") else "?",
                str(release.get("deploysFrom", "")),
            ]
            for release in releases
        ]
        lines += ["  " + line for line in table(["NODE", "TARGET", "NOW", "DEPLOYS", "FROM"], rows)]
    return [untrusted(line) for line in lines]


def _print_plan(plan: Mapping[str, Any], title: str, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(plan, indent=2))
    else:
        print("\n".join([title, *plan_lines(plan)]))


def show_plan(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.cli.runs import run_request

    request = run_request(args)

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            project = await backend.project(args.project)
            stage = await backend.stage(project, args.pipeline, args.stage)
            plan = await backend.plan(project, args.pipeline, stage, request)
        title = f"plan of a run of {project}/{args.pipeline}/{stage} (nothing was started)"
        _print_plan(plan, title, as_json=args.json)
        return EXIT_OK

    return run_async(go())


def show_stored_plan(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            run_id, plan = await backend.stored_plan(args.run)
        if plan is None:
            print(f"run {run_id} keeps no plan (it was started before runs kept their plans)")
        else:
            _print_plan(plan, f"the plan run {run_id} was started with", as_json=args.json)
        return EXIT_OK

    return run_async(go())

"""Knowing what is where: stages side by side (``state PIPELINE``), a stage's timeline, the difference
between two runs, delivery figures."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from releaseflow.cli.backend import open_backend
from releaseflow.cli.common import EXIT_OK, Subparsers, run_async
from releaseflow.cli.counts import count
from releaseflow.cli.render import duration, moment, short_id, table, untrusted
from releaseflow.domain.errors import Issue, ValidationError

if TYPE_CHECKING:
    from releaseflow.cli.backend import Backend
    from releaseflow.domain.release_history import StageComparison
    from releaseflow.domain.run_diff import ValueChange
    from releaseflow.engine.insights import RunDiff, TimelineEntry
    from releaseflow.settings import Settings


def register(commands: Subparsers) -> None:
    timeline = commands.add_parser("timeline", help="every change of a stage's release state, with its run")
    timeline.add_argument("pipeline")
    timeline.add_argument("stage")
    timeline.add_argument("--project", help="the project (default: the only one)")
    timeline.add_argument(
        "--limit", type=count(), default=50, help="the newest this many changes (default 50)"
    )
    timeline.add_argument("--json", action="store_true", help="print JSON")
    timeline.set_defaults(handler=show_timeline, remote=True)

    diff = commands.add_parser("diff", help="what differs between two runs of a stage")
    diff.add_argument("first", metavar="RUN", help="run id, or a unique start of it")
    diff.add_argument("second", metavar="RUN", help="the other run")
    diff.add_argument("--json", action="store_true", help="print JSON")
    diff.set_defaults(handler=show_diff, remote=True)

    metrics = commands.add_parser(
        "metrics", help="delivery figures of a pipeline's stages from their history"
    )
    metrics.add_argument("pipeline")
    metrics.add_argument("stage", nargs="?", help="one stage (default: every stage)")
    metrics.add_argument("--project", help="the project (default: the only one)")
    metrics.add_argument(
        "--since",
        help="from this date (2026-11-01, or a moment in ISO 8601) or this long ago (30d, 12h, 45m)",
    )
    metrics.add_argument("--json", action="store_true", help="print JSON")
    metrics.set_defaults(handler=show_metrics, remote=True)


# ---------------------------------------------------------------------------------------------------
# Side by side (releaseflow state PIPELINE)


def short_artifact(artifact: Mapping[str, Any] | None) -> str:
    """An artifact in a few characters: the image, else the commit, else the build id."""
    if not artifact:
        return "-"
    if artifact.get("kind") == "image":
        return str(artifact.get("image", "?"))
    if artifact.get("commit"):
        return str(artifact["commit"])[:10]
    return str(artifact.get("buildId", "?"))


def comparison_lines(comparison: StageComparison) -> list[str]:
    """A row per service or job (resources linked by promotions are one row), a column per stage,
    then which neighbouring stages differ."""
    rows = []
    for lineage in comparison.lineages:
        cells = [lineage.label]
        for cell in lineage.cells:
            parts = [
                short_artifact(deployed.artifact if deployed else None)
                + ("" if resource == lineage.label else f" ({resource})")
                for resource, deployed in cell.resources
            ]
            cells.append(", ".join(parts))
        rows.append(cells)
    lines = table(["SERVICE/JOB", *comparison.stages], rows)
    for difference in comparison.differences:
        if not difference.compared:
            verdict = "nothing to compare (no service or job of one is promoted to the other)"
        elif difference.same:
            verdict = "same"
        else:
            verdict = "differ: " + ", ".join(difference.differing)
        lines.append(untrusted(f"{difference.left} → {difference.right}: {verdict}"))
    return lines


async def print_comparison(backend: Backend, project: str | None, pipeline: str) -> None:
    """The stages side by side, then the release state in detail (since when, which run)."""
    from releaseflow.cli.state import state_lines

    project_id = await backend.project(project)
    comparison = await backend.compare_pipeline(project_id, pipeline)
    views = await backend.release_state(project_id, pipeline, None)
    if not comparison.lineages:
        print("the pipeline's stages hold no service or job")
        return
    print("\n".join(comparison_lines(comparison)))
    print()
    print("\n".join(state_lines(views)) if views else "nothing has been deployed yet")


# ---------------------------------------------------------------------------------------------------
# Timeline


def timeline_lines(entries: list[TimelineEntry]) -> list[str]:
    rows = []
    for entry in entries:
        change = entry.change
        rows.append(
            [
                moment(change.entry.deployed_at),
                change.entry.resource_id,
                short_artifact(change.previous),
                short_artifact(change.entry.artifact) + ("" if change.changed else " (redeploy)"),
                _run_label(change.entry.run_id, entry.run_name),
                entry.run_kind,
            ]
        )
    return table(["DEPLOYED", "RESOURCE", "FROM", "TO", "RUN", "KIND"], rows)


def _run_label(run_id: str, name: str) -> str:
    return short_id(run_id) + (f" {name}" if name != run_id else "")


def show_timeline(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.wire import history as wire

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            project = await backend.project(args.project)
            stage = await backend.stage(project, args.pipeline, args.stage)
            entries = await backend.timeline(project, args.pipeline, stage, args.limit)
        if args.json:
            print(json.dumps(wire.timeline(entries), indent=2))
            return EXIT_OK
        print("\n".join(timeline_lines(entries)) if entries else f"nothing has been deployed to {stage} yet")
        return EXIT_OK

    return run_async(go())


# ---------------------------------------------------------------------------------------------------
# Diff


def _shown(value: Any) -> str:
    from releaseflow.domain.run_diff import MISSING

    if value is MISSING:
        return "(none)"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _changes(title: str, changes: list[ValueChange]) -> list[str]:
    if not changes:
        return [f"{title}: same"]
    return [f"{title}:", *(f"  {c.key}: {_shown(c.before)} → {_shown(c.after)}" for c in changes)]


def diff_lines(diff: RunDiff) -> list[str]:
    lines = [f"stage {diff.stage}"]
    for label, side in (("---", diff.first), ("+++", diff.second)):
        name = f" “{side.display_name}”" if side.display_name != side.id else ""
        lines.append(
            f"{label} run {side.id}{name}: {side.kind}, {side.status}, release flow version"
            f" {side.flow_version}, created {moment(side.created_at)}"
        )
    if diff.template:
        lines += ["template:", *("  " + line for line in diff.template)]
    else:
        lines.append(
            f"template: same (version {diff.first.flow_version} and {diff.second.flow_version} match)"
        )
    lines += _changes("arguments", diff.arguments)
    lines += _changes("overrides", diff.overrides)
    artifact_rows = [
        [change.key, short_artifact(_or_none(change.before)), short_artifact(_or_none(change.after))]
        for change in diff.artifacts
    ]
    if artifact_rows:
        lines += [
            "artifacts deployed:",
            *("  " + line for line in table(["TARGET", "FIRST", "SECOND"], artifact_rows)),
        ]
    if diff.same_artifacts:
        lines.append("same artifact deployed by both: " + ", ".join(diff.same_artifacts))
    if not artifact_rows and not diff.same_artifacts:
        lines.append("artifacts deployed: none by either run")
    return [untrusted(line) for line in lines]


def _or_none(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def show_diff(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.wire import history as wire

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            diff = await backend.diff_runs(args.first, args.second)
        print(json.dumps(wire.diff(diff), indent=2) if args.json else "\n".join(diff_lines(diff)))
        return EXIT_OK

    return run_async(go())


# ---------------------------------------------------------------------------------------------------
# Metrics

_AGO = re.compile(r"^(\d+)([dhm])$")


def parse_since(text: str, now: datetime) -> datetime:
    """``30d``, ``12h``, ``45m`` before ``now``, or a date / ISO 8601 moment (UTC when it names no zone)."""
    ago = _AGO.match(text.strip())
    if ago:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[ago.group(2)]
        return now - timedelta(**{unit: int(ago.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            [
                Issue(
                    "--since",
                    f"'{text}' is neither a date (2026-11-01), a moment in ISO 8601 nor 30d/12h/45m",
                )
            ],
            subject="command line",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def metrics_lines(figures: Mapping[str, Any]) -> list[str]:
    """A stage's delivery figures, from their JSON shape (``wire.history.metrics``): the same lines
    whether the figures were computed here or by a server."""
    from releaseflow.wire.decode import moment as parse

    start, end = parse(figures["since"]), parse(figures["until"])
    days = max((end - start).total_seconds() / 86400, 1 / 86400) if start and end else 0.0
    lines = [f"{figures['stage']} (since {moment(start)}, {days:.1f} days)"]
    lines.append(
        f"  deployment frequency  {figures['deployments']} deployment(s),"
        f" {figures['deploymentsPerDay']:.2f} per day"
    )
    rate = figures["changeFailureRate"]
    failed, rolled_back = figures["failed"], figures["rolledBack"]
    if rate is None:
        lines.append("  change failure rate   unknown (no release concluded)")
    else:
        lines.append(
            f"  change failure rate   {rate:.0%} ({len(set(failed) | set(rolled_back))} of"
            f" {figures['releases']} releases: {len(failed)} failed,"
            f" {len(rolled_back)} rolled back)"
        )
    restore = _seconds(figures["meanTimeToRestoreSeconds"])
    restored = sum(1 for incident in figures["incidents"] if incident["restoredAt"] is not None)
    still_open = len(figures["incidents"]) - restored
    open_note = f", {still_open} not restored yet" if still_open else ""
    if restore is None:
        lines.append(f"  mean time to restore  unknown (no restored incident{open_note})")
    else:
        lines.append(f"  mean time to restore  {_span(restore)} over {restored} incident(s){open_note}")
    median, mean = _seconds(figures["leadTimeMedianSeconds"]), _seconds(figures["leadTimeMeanSeconds"])
    if median is None or mean is None:
        lines.append("  lead time             unknown (no deploy records the time of its commit)")
    else:
        without = figures["deploysWithoutCommitTime"]
        unknown = f"; {without} without commit time" if without else ""
        lines.append(
            f"  lead time             median {_span(median)}, mean"
            f" {_span(mean)} ({figures['leadTimes']} deploy(s){unknown})"
        )
    return lines


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def _span(span: timedelta) -> str:
    start = datetime(2000, 1, 1, tzinfo=UTC)
    return duration(start, start + span)


def show_metrics(args: argparse.Namespace, settings: Settings) -> int:
    now = datetime.now(UTC)
    since = parse_since(args.since, now) if args.since else None

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            project = await backend.project(args.project)
            stage = await backend.stage(project, args.pipeline, args.stage) if args.stage else None
            figures = await backend.metrics(project, args.pipeline, stage, since=since)
        if args.json:
            print(json.dumps(figures, indent=2))
            return EXIT_OK
        if not figures:
            print(f"no stage of {args.pipeline} has a release flow yet")
        for index, each in enumerate(figures):
            print(("\n" if index else "") + "\n".join(metrics_lines(each)))
        return EXIT_OK

    return run_async(go())

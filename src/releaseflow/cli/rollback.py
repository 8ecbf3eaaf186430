"""Rollback and pins: rollback, rollbacks, pin, unpin."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from releaseflow.cli import render
from releaseflow.cli.backend import open_backend
from releaseflow.cli.common import EXIT_FAILED, EXIT_OK, Subparsers, run_async, stage_arguments
from releaseflow.domain.errors import ConflictError

if TYPE_CHECKING:
    from releaseflow.cli.backend import Backend
    from releaseflow.domain.rollback import TargetOutcome
    from releaseflow.engine.queries import RunDetail, RunSummary
    from releaseflow.settings import Settings


def register(commands: Subparsers) -> None:
    rollback = commands.add_parser(
        "rollback", help="return a stage to the release state it had right after a run (then pin it)"
    )
    rollback.add_argument("run", help="the run to roll back to: its id, or a unique start of it")
    rollback.add_argument(
        "--config", action="store_true", help="also restore the release flow version that run used"
    )
    rollback.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rollback.add_argument(
        "--as", dest="by", help="who rolls back (default: the current user; through a server: the token)"
    )
    rollback.add_argument("--name", help="display name of the rollback run")
    rollback.add_argument("--follow", action="store_true", help="show the rollback live until it ends")
    rollback.set_defaults(handler=start_rollback, remote=True)

    rollbacks = commands.add_parser(
        "rollbacks", help="the rollbacks that targeted a run, and where each left"
    )
    rollbacks.add_argument("run", help="run id, or a unique start of it")
    rollbacks.set_defaults(handler=list_rollbacks, remote=True)

    restore = commands.add_parser(
        "restore-backup", help="restore a backup a run of the stage took of one of its addons (asks first)"
    )
    stage_arguments(restore)
    restore.add_argument("addon", help="the addon's id")
    restore.add_argument("backup", help="the backup's id (releaseflow rollback RUN lists them)")
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    restore.add_argument("--as", dest="by", help="who restores (default: the current user)")
    restore.add_argument("--follow", action="store_true", help="show the restore live until it ends")
    restore.set_defaults(handler=restore_backup, remote=True)

    pin = commands.add_parser("pin", help="pin a stage: git and webhook triggers stop deploying to it")
    stage_arguments(pin)
    pin.add_argument("--reason", required=True, help="why (shown with the pin)")
    pin.add_argument("--as", dest="by", help="who pins (default: the current user; remotely: the token)")
    pin.set_defaults(handler=pin_stage, remote=True)
    unpin = commands.add_parser("unpin", help="clear a stage's pin: triggers deploy to it again")
    stage_arguments(unpin)
    unpin.set_defaults(handler=unpin_stage, remote=True)


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def run_notice_lines(detail: RunDetail) -> list[str]:
    """What a run by hand says when it cleared its stage's pin, or its flow is paused (from its events)."""
    from releaseflow.engine.commands import PAUSED_BY_HAND

    return [
        f"this run {render.untrusted(event.cause)}"
        if event.cause.startswith("cleared")
        else f"note: {event.cause}"
        for event in detail.events
        if event.node_path is None
        and (event.cause.startswith("cleared the stage's pin") or event.cause == PAUSED_BY_HAND)
    ]


def preview_lines(target: RunSummary, preview: Mapping[str, Any], restore_config: bool) -> list[str]:
    """A rollback's preview (``wire.control.rollback_preview``'s document), before it is confirmed."""
    from releaseflow.domain.rollback import describe_artifact
    from releaseflow.wire.decode import moment
    from releaseflow.wire.decode import pin as decode_pin

    ended = render.moment(target.concluded_at)
    stage = f"{preview['project']}/{preview['pipeline']}/{preview['stage']}"
    lines = [
        f"Rollback of {stage} to run {render.run_label(target.id, target.display_name)}"
        f" ({target.status}, ended {ended})",
        "Each service and job goes back to what it ran right after that run:",
    ]
    for change in preview["changes"]:
        same = "  (already runs it: redeployed as it is)" if change["unchanged"] else ""
        old = render.untrusted(describe_artifact(change["from"]))
        new = render.untrusted(describe_artifact(change["to"]))
        lines.append(f"  {change['resourceId']} ({change['kind']}): {old} -> {new}{same}")
    for left in preview["leftAsIs"]:
        lines.append(f"  {left['resourceId']}: left as it is ({left['reason']})")
    config_version, current_version = preview["configVersion"], preview["currentVersion"]
    if restore_config:
        lines.append(
            f"Configuration: the release flow gets a new version equal to version {config_version}"
            f" (now {current_version}), marked restored from this run."
        )
    else:
        lines.append(
            f"Configuration: left as it is (version {current_version}); --config restores version"
            f" {config_version}, which that run used."
        )
    lines.append(f"Warning: {preview['warning']}")
    if preview["backups"]:
        lines.append("Backups of the stage's addons taken by that run or later ones:")
        for backup in preview["backups"]:
            taken = render.moment(moment(backup["takenAt"]))
            lines.append(
                f"  {backup['addonId']}: backup {render.untrusted(backup['backupId'])} (run"
                f" {render.short_id(backup['runId'])}, node {backup['nodeRef'] or '?'}, {taken})"
            )
        where = f"{preview['pipeline']} {preview['stage']}"
        lines.append(
            "  The rollback restores none of them. Restoring one is a separate step with its own"
            f" confirmation: releaseflow restore-backup {where} ADDON BACKUP"
        )
    if (pin := decode_pin(preview["pin"])) is not None:
        lines.append(f"The stage is already {pin.describe()}.")
    lines.append("Afterwards the stage is pinned: git and webhook triggers do not deploy over it.")
    return lines


def outcome_lines(outcomes: Sequence[TargetOutcome]) -> list[str]:
    from releaseflow.domain.rollback import describe_artifact

    words = {"rolled back": "rolled back to", "old": "still on its old artifact", "other": "now on"}
    return [
        f"  {item.resource_id}: {words[item.where]} {render.untrusted(describe_artifact(item.artifact))}"
        for item in outcomes
    ]


async def rollback_lines(backend: Backend, run: RunSummary) -> list[str]:
    """Where each target of a rollback run stands, under a heading (for ``show``)."""
    return ["  where each target stands:", *outcome_lines(await backend.rollback_outcome(run))]


def start_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.cli.follow import follow_run
    from releaseflow.domain.statuses import RunStatus

    async def go() -> int:
        async with open_backend(args.target, settings, drivers=True) as backend:
            target, preview = await backend.rollback_preview(args.run)
            print("\n".join(preview_lines(target, preview, args.config)), flush=True)
            if preview["missing"]:
                print("Refused: these artifacts no longer exist:")
                print("\n".join(f"  {render.untrusted(line)}" for line in preview["missing"]))
                return EXIT_FAILED
            if not args.yes and not _confirmed():
                return EXIT_FAILED
            started, restored_version = await backend.start_rollback(
                target.id, by=args.by or current_user(), restore_config=args.config, name=args.name
            )
            run = started.run
            print(f"started rollback run {run.id}: {run.status}")
            if restored_version is not None:
                print(f"release flow version {restored_version} restored from run {target.id}")
            if not args.follow:
                print(f"follow it with: releaseflow show {render.short_id(run.id)}")
                return EXIT_OK
            final = await follow_run(backend, run.id)
            print("\n".join(await rollback_lines(backend, (await backend.run_detail(run.id)).run)))
            return EXIT_OK if final is RunStatus.SUCCESS else EXIT_FAILED

    return run_async(go())


def _confirmed(what: str = "rollback", question: str = "Roll back?") -> bool:
    if not sys.stdin.isatty():
        raise ConflictError(
            f"{what} not started: confirm with --yes (standard input is not a terminal, so it cannot ask)"
        )
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer in ("y", "yes"):
        return True
    print(f"{what} not started")
    return False


def restore_backup(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.cli.follow import follow_run
    from releaseflow.domain.statuses import RunStatus

    async def go() -> int:
        async with open_backend(args.target, settings, drivers=True) as backend:
            project = await backend.project(args.project)
            stage = await backend.stage(project, args.pipeline, args.stage)
            print(
                f"Restore backup {render.untrusted(args.backup)} into addon {render.untrusted(args.addon)}"
                f" ({project}/{args.pipeline}/{stage}): the addon's current data is replaced by the backup's."
            )
            if not args.yes and not _confirmed("restore", "Restore it?"):
                return EXIT_FAILED
            run = await backend.restore_backup(
                project, args.pipeline, stage, args.addon, args.backup, by=args.by or current_user()
            )
            print(f"started restore run {run.id}: {run.status}")
            if not args.follow:
                print(f"follow it with: releaseflow show {render.short_id(run.id)}")
                return EXIT_OK
            final = await follow_run(backend, run.id)
            return EXIT_OK if final is RunStatus.SUCCESS else EXIT_FAILED

    return run_async(go())


def list_rollbacks(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            run_id, found = await backend.rollbacks_of(args.run)
        if not found:
            print(f"no rollback targeted run {run_id}")
            return EXIT_OK
        lines = render.runs_table([summary for summary, _ in found])
        print(lines[0])
        for line, (_, outcome) in zip(lines[1:], found, strict=True):
            print(line)
            print("\n".join(outcome_lines(outcome)))
        return EXIT_OK

    return run_async(go())


def pin_stage(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            project = await backend.project(args.project)
            stage = await backend.stage(project, args.pipeline, args.stage)
            made = await backend.pin(
                project, args.pipeline, stage, by=args.by or current_user(), reason=args.reason
            )
        print(f"{args.pipeline} {stage}: {render.untrusted(made.describe())}")
        return EXIT_OK

    return run_async(go())


def unpin_stage(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            project = await backend.project(args.project)
            stage = await backend.stage(project, args.pipeline, args.stage)
            cleared = await backend.unpin(project, args.pipeline, stage)
        if cleared is None:
            print(f"{args.pipeline} {stage} was not pinned")
        else:
            print(f"{args.pipeline} {stage}: pin cleared (it was {render.untrusted(cleared.describe())})")
        return EXIT_OK

    return run_async(go())

"""`releaseflow approvals`: the Approval nodes waiting for a decision, across runs."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from releaseflow.cli import render
from releaseflow.cli.backend import open_backend
from releaseflow.cli.common import EXIT_OK, Subparsers, run_async

if TYPE_CHECKING:
    from releaseflow.settings import Settings


def register(commands: Subparsers) -> None:
    approvals = commands.add_parser("approvals", help="list the Approval nodes waiting for a decision")
    approvals.add_argument(
        "--for",
        dest="person",
        metavar="NAME",
        help="only those NAME may decide and has not approved yet (not the runs NAME started)",
    )
    approvals.set_defaults(handler=list_approvals, remote=True)


def list_approvals(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            waiting = await backend.waiting_approvals(args.person)
        if not waiting:
            print("no approval is waiting" + (f" for {args.person}" if args.person else ""))
            return EXIT_OK
        rows = [
            [
                render.short_id(w.run_id),
                w.run_name,
                f"{w.project_id}/{w.pipeline_id} {w.stage}",
                w.node,
                f"{len(w.approved_by)}/{w.required}"
                + (f" ({', '.join(w.approved_by)})" if w.approved_by else ""),
                render.moment(w.since),
                render.moment(w.expires) if w.expires is not None else "never",
                ", ".join(w.approvers) if w.approvers else f"anyone but {w.started_by or 'the starter'}",
            ]
            for w in waiting
        ]
        headers = ["RUN", "NAME", "STAGE", "NODE", "APPROVED", "SINCE", "EXPIRES", "WHO MAY APPROVE"]
        print("\n".join(render.table(headers, rows)))
        print("decide with: releaseflow approve RUN NODE --as NAME  (or reject ... --reason TEXT)")
        return EXIT_OK

    return run_async(go())

"""`releaseflow notifications add|list|remove|log`: subscriptions to run events and their deliveries."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from releaseflow.cli import render
from releaseflow.cli.backend import open_backend
from releaseflow.cli.common import EXIT_OK, Subparsers, run_async
from releaseflow.cli.counts import count
from releaseflow.domain.notifications import ALL_EVENTS, ChannelKind

if TYPE_CHECKING:
    from releaseflow.settings import Settings


def register(commands: Subparsers) -> None:
    group = commands.add_parser("notifications", help="subscriptions to run events (webhooks, Slack)")
    group.set_defaults(remote=True)
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="subscribe a webhook to the run events of a project or pipeline")
    add.add_argument("--project", required=True, help="project id")
    add.add_argument("--pipeline", help="only the runs of this pipeline (default: every pipeline)")
    add.add_argument(
        "--kind",
        default=str(ChannelKind.WEBHOOK),
        choices=[str(kind) for kind in ChannelKind],
        help="body format",
    )
    add.add_argument("--url", required=True, help="where to POST (http:// or https://)")
    add.add_argument(
        "--event",
        dest="events",
        action="append",
        metavar="EVENT",
        help=f"an event to send (repeatable; default: all but status): {', '.join(map(str, ALL_EVENTS))}",
    )
    add.add_argument("--secret", default="", help="signing secret (default: a random one, shown once)")
    add.set_defaults(handler=add_subscription)
    listing = actions.add_parser("list", help="list subscriptions")
    listing.add_argument("--project", help="only this project's")
    listing.set_defaults(handler=list_subscriptions)
    remove = actions.add_parser("remove", help="remove a subscription (its log is kept)")
    remove.add_argument("id", help="subscription id (sub-...)")
    remove.add_argument("--project", help="the project holding it (through a server: the token's only one)")
    remove.set_defaults(handler=remove_subscription)
    log = actions.add_parser("log", help="recent deliveries with every attempt")
    log.add_argument("id", nargs="?", help="only this subscription's")
    log.add_argument("--project", help="only this project's subscriptions")
    log.add_argument("--limit", type=count(), default=20, help="how many deliveries (default 20)")
    log.set_defaults(handler=delivery_log)


def add_subscription(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.domain.notifications import NotificationEvent
    from releaseflow.engine.notifications import SubscriptionRequest

    events = args.events or [str(event) for event in ALL_EVENTS if event is not NotificationEvent.STATUS]
    request = SubscriptionRequest(args.project, args.kind, args.url, events, args.pipeline, args.secret)

    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            record = await backend.subscribe(request)
        print(f"subscription {record.id}: {record.kind} {record.url} <- {', '.join(record.events)}")
        if not args.secret:
            print(f"signing secret (shown once, keep it with the receiver): {record.secret}")
        return EXIT_OK

    return run_async(go())


def list_subscriptions(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            records = await backend.subscriptions(args.project)
        if not records:
            print("no notification subscription")
            return EXIT_OK
        rows = [
            [
                record.id,
                record.project_id + (f"/{record.pipeline_id}" if record.pipeline_id else ""),
                record.kind,
                record.url,
                ",".join(record.events),
                record.source,
            ]
            for record in records
        ]
        print("\n".join(render.table(["ID", "SCOPE", "KIND", "URL", "EVENTS", "SOURCE"], rows)))
        return EXIT_OK

    return run_async(go())


def remove_subscription(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            await backend.unsubscribe(args.id, args.project)
        print(f"removed subscription {args.id}")
        return EXIT_OK

    return run_async(go())


def delivery_log(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with open_backend(args.target, settings) as backend:
            views = await backend.deliveries(args.id, args.project, args.limit)
        if not views:
            print("no delivery yet")
            return EXIT_OK
        lines = []
        for view in views:
            delivery = view.delivery
            change = f"{delivery.from_status or '-'} -> {delivery.to_status}"
            lines.append(
                f"{render.moment(delivery.at)}  {delivery.event:<11} {delivery.state:<9} {delivery.id}"
                f"  (run {render.short_id(delivery.run_id)}: {change})"
            )
            for attempt in view.attempts:
                answer = "ok" if attempt.error is None else attempt.error
                code = attempt.status_code if attempt.status_code is not None else "-"
                lines.append(
                    f"    attempt {attempt.attempt} at {render.clock(attempt.at)}: {code} {answer}"
                    f" ({attempt.duration_ms:.0f} ms)"
                )
            if delivery.state == "pending" and delivery.due_at is not None and view.attempts:
                lines.append(f"    next attempt at {render.clock(delivery.due_at)}")
        print("\n".join(render.untrusted(line) for line in lines))
        return EXIT_OK

    return run_async(go())

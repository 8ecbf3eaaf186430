"""Notification subscriptions and their delivery log: the commands behind `releaseflow notifications`.

A subscription names a project (and optionally one pipeline of it), the run events it wants
(``domain.notifications.NotificationEvent``), where to send them (a webhook or a Slack incoming
webhook) and the secret that signs them. Every change of a run's status writes one delivery per
matching subscription in the transaction of the change (``engine.transitions``); the deliverer
(``engine.deliverer``) sends them.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from releaseflow.domain.errors import Issue, NotFoundError, ValidationError
from releaseflow.domain.notifications import parse_channel, parse_events
from releaseflow.engine.clock import Clock
from releaseflow.store import catalog
from releaseflow.store import notifications as store
from releaseflow.store.database import Database, Transaction
from releaseflow.store.notifications import AttemptRecord, DeliveryRecord, SubscriptionRecord

# Subscriptions added by a command; those of the configuration file say "config" (apply owns them).
BY_HAND = "manual"
SECRET_BYTES = 32


@dataclass(frozen=True)
class SubscriptionRequest:
    project_id: str
    kind: str
    url: str
    events: Sequence[str]
    pipeline_id: str | None = None
    # Empty: a new random secret, shown once by the command that adds it.
    secret: str = ""


@dataclass(frozen=True)
class DeliveryView:
    delivery: DeliveryRecord
    attempts: tuple[AttemptRecord, ...]


class Notifications:
    """Commands and reads on subscriptions. Cheap to create; one per engine."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def subscribe(self, request: SubscriptionRequest, *, source: str = BY_HAND) -> SubscriptionRecord:
        """Add a subscription; its record carries the secret (show it once, then only its start)."""
        async with self.db.transaction() as tx:
            record = await checked_subscription(tx, request, source, self.clock.now())
            await store.insert_subscription(tx, record)
        return record

    async def subscriptions(self, project_id: str | None = None) -> list[SubscriptionRecord]:
        async with self.db.read() as tx:
            return await store.list_subscriptions(tx, project_id)

    async def unsubscribe(self, subscription_id: str) -> None:
        async with self.db.transaction() as tx:
            if not await store.delete_subscription(tx, subscription_id, self.clock.now()):
                raise NotFoundError(f"no notification subscription '{subscription_id}'")

    async def deliveries(
        self, *, subscription_id: str | None = None, project_id: str | None = None, limit: int = 50
    ) -> list[DeliveryView]:
        """The newest deliveries (of one subscription, a project's or all), each with its attempts."""
        async with self.db.read() as tx:
            subscribed = await store.list_subscriptions(tx, project_id)
            ids = [record.id for record in subscribed]
            if subscription_id is not None:
                if subscription_id not in ids and not await _has_deliveries(tx, subscription_id):
                    raise NotFoundError(f"no notification subscription '{subscription_id}'")
                ids = [subscription_id]
            deliveries, attempts = await store.list_deliveries(tx, ids, limit)
        by_delivery: dict[str, list[AttemptRecord]] = {}
        for attempt in attempts:
            by_delivery.setdefault(attempt.delivery_id, []).append(attempt)
        return [DeliveryView(delivery, tuple(by_delivery.get(delivery.id, ()))) for delivery in deliveries]


async def checked_subscription(
    tx: Transaction, request: SubscriptionRequest, source: str, now: datetime, *, path: str = ""
) -> SubscriptionRecord:
    """A subscription record from a request, every problem named at once (with ``path`` before each)."""
    channel, issues = parse_channel(request.kind, request.url, path)
    events, event_issues = parse_events(request.events, f"{path}events")
    issues += event_issues
    if request.secret and len(request.secret) < 16:
        issues.append(
            Issue(f"{path}secret", "must be at least 16 characters (or leave it out for a random one)")
        )
    if request.pipeline_id is not None:
        if await catalog.get_pipeline(tx, request.project_id, request.pipeline_id) is None:
            issues.append(
                Issue(
                    f"{path}pipeline",
                    f"no pipeline '{request.pipeline_id}' in project '{request.project_id}'",
                )
            )
    elif request.project_id not in {row["id"] for row in await catalog.list_projects(tx)}:
        issues.append(Issue(f"{path}project", f"no project '{request.project_id}'"))
    if issues or channel is None:
        raise ValidationError(issues, subject="notification subscription")
    return SubscriptionRecord(
        id=f"sub-{secrets.token_hex(4)}",
        project_id=request.project_id,
        pipeline_id=request.pipeline_id,
        kind=str(channel),
        url=request.url,
        secret=request.secret or secrets.token_urlsafe(SECRET_BYTES),
        events=tuple(str(event) for event in events),
        source=source,
        created_at=now,
    )


async def _has_deliveries(tx: Transaction, subscription_id: str) -> bool:
    deliveries, _ = await store.list_deliveries(tx, [subscription_id], 1)
    return bool(deliveries)

"""Sends the outbox of notifications: at least once, signed, retried with backoff, every attempt logged.

Each pass claims the due deliveries in one short transaction (moving their due time past the send,
so a sender that dies mid-way leaves them to be sent again), POSTs them outside any transaction, then
records each answer. Every worker runs a deliverer; on PostgreSQL they share the outbox with
``SKIP LOCKED``. A receiver may see a delivery twice (after a crash between its answer and the
record of it): the ``X-Releaseflow-Delivery`` header is the id to deduplicate on.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from releaseflow.domain.notifications import ChannelKind, RunEventFacts, body, headers, next_attempt
from releaseflow.engine.clock import Clock
from releaseflow.platform.webhooks import TIMEOUT_SECONDS, SendResult, WebhookSender
from releaseflow.store import notifications as store
from releaseflow.store.database import Database
from releaseflow.store.notifications import DeliveryRecord, SubscriptionRecord

# Deliveries claimed, and sent at once, per pass: a batch aimed at one receiver must not look like a
# flood (a small server's listen backlog refuses the excess, which would only come back as retries),
# and the whole batch ends within its hold (each send within its timeout), so no other worker sends
# it again meanwhile. A full batch is followed at once by the next.
BATCH = 8
# How long a claimed delivery is held for its sender by default: twice the sender's own timeout.
HOLD_SECONDS = 2 * TIMEOUT_SECONDS


class Deliverer:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        hold_seconds: float = HOLD_SECONDS,
        sender: WebhookSender | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.hold_seconds = hold_seconds
        self.sender = sender or WebhookSender(timeout=min(TIMEOUT_SECONDS, hold_seconds / 2))

    async def deliver_due(self) -> int:
        """One pass: send what is due now; returns how many attempts were made."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            claimed = await store.claim_due(tx, now, now + timedelta(seconds=self.hold_seconds), BATCH)
            if not claimed:
                return 0
            subscriptions = await store.subscriptions_by_id(tx, sorted({d.subscription_id for d in claimed}))
            places = await store.run_places(tx, sorted({d.run_id for d in claimed}))
        results = await asyncio.gather(
            *(
                self._send(delivery, subscriptions.get(delivery.subscription_id), places)
                for delivery in claimed
            )
        )
        async with self.db.transaction() as tx:
            for delivery, result in zip(claimed, results, strict=True):
                done = self.clock.now()
                gone = delivery.subscription_id not in subscriptions
                again = None if result.error is None or gone else next_attempt(delivery.attempts, done)
                await store.record_attempt(
                    tx, delivery, done, result.status_code, result.error, result.duration_ms, again
                )
        return len(claimed)

    async def release_held(self) -> None:
        """Make every pending delivery due now: for a process that knows no other sender is alive
        (SQLite serves one process), so what a dead one held is sent again at once, not after its
        hold; a retry waiting out its backoff is tried a little early, which is harmless."""
        async with self.db.transaction() as tx:
            await store.make_all_due(tx, self.clock.now())

    async def _send(
        self,
        delivery: DeliveryRecord,
        subscription: SubscriptionRecord | None,
        places: dict[str, dict[str, object]],
    ) -> SendResult:
        if subscription is None:
            return SendResult(None, "the subscription was removed", 0.0)
        place = places[delivery.run_id]
        facts = RunEventFacts(
            delivery_id=delivery.id,
            event=delivery.event,
            run_id=delivery.run_id,
            run_name=str(place["name"] or f"run {place['seq']}"),
            run_kind=str(place["kind"]),
            project_id=str(place["project_id"]),
            pipeline_id=str(place["pipeline_id"]),
            stage=str(place["stage"]),
            from_status=delivery.from_status,
            to_status=delivery.to_status,
            cause=delivery.cause,
            at=delivery.at,
        )
        payload = body(ChannelKind(subscription.kind), facts)
        signed = headers(subscription.secret, delivery.id, delivery.event, payload, self.clock.now())
        return await self.sender.post(subscription.url, payload, signed)

    async def close(self) -> None:
        await self.sender.close()

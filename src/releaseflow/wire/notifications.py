"""Notification subscriptions and their delivery log, as JSON. A subscription's signing secret is
never part of it: it is given when the subscription is added, and kept by the receiver."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from releaseflow.engine.notifications import DeliveryView
from releaseflow.store.notifications import SubscriptionRecord
from releaseflow.wire.runs import iso


def url_origin(url: str) -> str:
    """The scheme and host of ``url``, the rest elided: a Slack webhook's path is its credential."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.path.strip("/") or parts.query else url


class SubscriptionShape(BaseModel):
    id: str
    project: str
    pipeline: str | None = Field(description="only this pipeline's runs (null: every pipeline)")
    kind: str = Field(description="webhook or slack")
    url: str = Field(description="where events are POSTed; for readers below admin, only its origin")
    events: list[str]
    source: str = Field(description="manual (added by a command) or config (apply manages it)")
    createdAt: str | None

    @classmethod
    def of(cls, record: SubscriptionRecord, *, full_url: bool) -> SubscriptionShape:
        return cls(
            id=record.id,
            project=record.project_id,
            pipeline=record.pipeline_id,
            kind=record.kind,
            url=record.url if full_url else url_origin(record.url),
            events=list(record.events),
            source=record.source,
            createdAt=iso(record.created_at),
        )


class AttemptShape(BaseModel):
    attempt: int
    at: str | None
    statusCode: int | None = Field(description="the receiver's HTTP status (null: no answer)")
    error: str | None = Field(description="why the attempt failed (null: delivered)")
    durationMs: float


class DeliveryShape(BaseModel):
    id: str = Field(description="the delivery id receivers deduplicate on")
    subscriptionId: str
    runId: str
    event: str
    fromStatus: str | None
    toStatus: str
    cause: str
    at: str | None
    state: str = Field(description="pending, delivered or failed (gave up)")
    nextAttemptAt: str | None
    deliveredAt: str | None
    attempts: list[AttemptShape]

    @classmethod
    def of(cls, view: DeliveryView) -> DeliveryShape:
        delivery = view.delivery
        return cls(
            id=delivery.id,
            subscriptionId=delivery.subscription_id,
            runId=delivery.run_id,
            event=delivery.event,
            fromStatus=delivery.from_status,
            toStatus=delivery.to_status,
            cause=delivery.cause,
            at=iso(delivery.at),
            state=delivery.state,
            nextAttemptAt=iso(delivery.due_at) if delivery.state == "pending" else None,
            deliveredAt=iso(delivery.delivered_at),
            attempts=[
                AttemptShape(
                    attempt=attempt.attempt,
                    at=iso(attempt.at),
                    statusCode=attempt.status_code,
                    error=attempt.error,
                    durationMs=attempt.duration_ms,
                )
                for attempt in view.attempts
            ],
        )

"""Notification subscriptions over HTTP (``/api/projects/{projectId}/notifications/...``): list, add
and remove a project's subscriptions (or one pipeline's), and read the delivery log, as
``releaseflow notifications list|add|remove|log`` do. Admins change them, viewers read them.

A subscription's signing secret is never answered: the one adding it sends it (and gives it to the
receiver), so it is known only to them. Readers below admin see only the origin of a subscription's
URL, since a Slack webhook's URL is itself a credential.
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from releaseflow.api.answers import Answer
from releaseflow.api.northflank import ADMIN, APP, VIEWER
from releaseflow.api.routing import router_of
from releaseflow.application import Application
from releaseflow.domain.access import Role
from releaseflow.domain.errors import NotFoundError
from releaseflow.domain.notifications import ALL_EVENTS, ChannelKind, NotificationEvent
from releaseflow.engine import queries, release_flows
from releaseflow.engine.notifications import DeliveryView, Notifications, SubscriptionRequest
from releaseflow.engine.tokens import Principal
from releaseflow.store.notifications import SubscriptionRecord
from releaseflow.wire.notifications import DeliveryShape, SubscriptionShape

NOTIFICATIONS = "/api/projects/{projectId}/notifications"
SUBSCRIPTIONS = NOTIFICATIONS + "/subscriptions"
# What a subscription sends when it does not say: every event but the noisy "status" (as the CLI).
DEFAULT_EVENTS = [str(event) for event in ALL_EVENTS if event is not NotificationEvent.STATUS]
SECRET_MIN, SECRET_MAX = 16, 200


class SubscriptionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(..., min_length=1, max_length=2000, description="where to POST (http:// or https://)")
    kind: ChannelKind = Field(ChannelKind.WEBHOOK, description="the body's format: webhook or slack")
    events: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EVENTS),
        description=f"the events to send (default: all but status): {', '.join(map(str, ALL_EVENTS))}",
    )
    pipeline: str | None = Field(None, description="only this pipeline's runs (default: every pipeline)")
    secret: str = Field(
        ...,
        min_length=SECRET_MIN,
        max_length=SECRET_MAX,
        description="the signing secret the receiver checks; never answered back, keep it with the receiver",
    )


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionShape]


class DeliveryList(BaseModel):
    deliveries: list[DeliveryShape]


def notification_routes() -> APIRouter:
    return router_of(
        "notifications",
        [
            (
                "GET",
                SUBSCRIPTIONS,
                list_subscriptions,
                "The project's notification subscriptions (no secrets)",
            ),
            ("POST", SUBSCRIPTIONS, add_subscription, "Subscribe a webhook to the run events of the project"),
            ("DELETE", SUBSCRIPTIONS + "/{subscriptionId}", remove_subscription, "Remove a subscription"),
            ("GET", NOTIFICATIONS + "/deliveries", deliveries, "Recent deliveries, with every attempt"),
        ],
        response_model_exclude_unset=True,
    )


async def list_subscriptions(
    projectId: str,
    pipeline: str | None = Query(None, description="only those of this pipeline"),
    who: Principal = VIEWER,
    app: Application = APP,
) -> Answer[SubscriptionList]:
    found = await _subscriptions(app, projectId)
    if pipeline is not None:
        await release_flows.pipeline(app.db, projectId, pipeline)  # an unknown one is not found
        found = [record for record in found if record.pipeline_id == pipeline]
    full = who.allows(Role.ADMIN, projectId)
    shown = [SubscriptionShape.of(record, full_url=full) for record in found]
    return Answer[SubscriptionList](data=SubscriptionList(subscriptions=shown))


async def add_subscription(
    projectId: str, body: SubscriptionBody, _: Principal = ADMIN, app: Application = APP
) -> Answer[SubscriptionShape]:
    request = SubscriptionRequest(
        projectId, str(body.kind), body.url, body.events, body.pipeline, body.secret
    )
    record = await Notifications(app.db, app.clock).subscribe(request)
    return Answer[SubscriptionShape](data=SubscriptionShape.of(record, full_url=True))


async def remove_subscription(
    projectId: str, subscriptionId: str, _: Principal = ADMIN, app: Application = APP
) -> Answer[SubscriptionShape]:
    record = await _subscription(app, projectId, subscriptionId)
    await Notifications(app.db, app.clock).unsubscribe(record.id)
    return Answer[SubscriptionShape](data=SubscriptionShape.of(record, full_url=True))


async def deliveries(
    projectId: str,
    subscription: str | None = Query(None, description="only this subscription's (a removed one's too)"),
    limit: int = Query(20, ge=1, le=500, description="at most this many deliveries, newest first"),
    _: Principal = VIEWER,
    app: Application = APP,
) -> Answer[DeliveryList]:
    if subscription is None:
        await queries.resolve_project(app.db, projectId)
        views = await Notifications(app.db, app.clock).deliveries(project_id=projectId, limit=limit)
    else:
        views = await _subscription_log(app, projectId, subscription, limit)
    shown = [DeliveryShape.of(view) for view in views]
    return Answer[DeliveryList](data=DeliveryList(deliveries=shown))


async def _subscriptions(app: Application, project_id: str) -> list[SubscriptionRecord]:
    await queries.resolve_project(app.db, project_id)
    return await Notifications(app.db, app.clock).subscriptions(project_id)


async def _subscription(app: Application, project_id: str, subscription_id: str) -> SubscriptionRecord:
    for record in await _subscriptions(app, project_id):
        if record.id == subscription_id:
            return record
    raise _not_found(project_id, subscription_id)


async def _subscription_log(
    app: Application, project_id: str, subscription_id: str, limit: int
) -> list[DeliveryView]:
    """The deliveries of one of the project's subscriptions. A removed subscription keeps its log:
    then the runs it told of say whose it was."""
    live = {record.id for record in await _subscriptions(app, project_id)}
    try:
        views = await Notifications(app.db, app.clock).deliveries(
            subscription_id=subscription_id, limit=limit
        )
    except NotFoundError:
        views = []
    if subscription_id not in live:
        if not views:
            raise _not_found(project_id, subscription_id)
        told = await queries.run_detail(app.db, views[0].delivery.run_id, with_events=False)
        if told.run.project_id != project_id:
            raise _not_found(project_id, subscription_id)
    return views


def _not_found(project_id: str, subscription_id: str) -> NotFoundError:
    return NotFoundError(f"no notification subscription '{subscription_id}' in project '{project_id}'")

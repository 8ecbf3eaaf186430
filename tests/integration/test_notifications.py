"""Notifications of run events: the outbox written with each change, signed deliveries to a real HTTP
receiver, retries with backoff (on an injected clock), the delivery log."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from tests.integration.http_receiver import Receiver
from tests.integration.support import (
    PIPELINE,
    PROJECT,
    EngineHarness,
    job_run,
    template,
    wait_for_node,
    workflow,
)

from releaseflow.domain.errors import NotFoundError, ValidationError
from releaseflow.domain.notifications import DELIVERY_HEADER, EVENT_HEADER, MAX_ATTEMPTS
from releaseflow.domain.run_origin import OriginKind, RunOrigin
from releaseflow.engine.deliverer import Deliverer
from releaseflow.engine.notifications import Notifications, SubscriptionRequest

SECRET = "a-long-enough-shared-secret"


class SteppedClock:
    """Starts a year from now, long after the events the tests make (so they are due); moves when told."""

    def __init__(self) -> None:
        self.moment = datetime.now(UTC) + timedelta(days=365)

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(secret=SECRET)
    try:
        yield server
    finally:
        server.close()


def gate() -> dict[str, object]:
    return {"kind": "Approval", "ref": "gate", "spec": {"amount": 1}}


async def subscribe(harness: EngineHarness, url: str, *events: str, **fields: object) -> str:
    request = SubscriptionRequest(
        PROJECT, str(fields.pop("kind", "webhook")), url, events, secret=SECRET, **fields
    )  # type: ignore[arg-type]
    return (await harness.engine.notifications.subscribe(request)).id


async def test_notifications__a_run_is_told_to_its_subscribers_signed(
    harness: EngineHarness, receiver: Receiver
) -> None:
    await harness.seed(template(workflow(job_run("migration"))))
    await subscribe(harness, receiver.url, "started", "succeeded", "failed")
    await subscribe(harness, receiver.url, "status", pipeline_id=PIPELINE, kind="slack")
    run = await harness.start(name="first release")
    harness.start_worker()
    await harness.run(run.id)

    # started and succeeded to the webhook; every change (pending -> running -> success) to Slack.
    arrived = await asyncio.to_thread(receiver.wait_for, 4)
    assert all(delivery.signed and delivery.status == 200 for delivery in arrived)
    # Sent concurrently: in no promised order (a receiver orders by "at").
    webhooks = sorted(
        (d for d in arrived if "deliveryId" in d.body), key=lambda d: datetime.fromisoformat(d.body["at"])
    )
    assert [(d.body["event"], d.body["fromStatus"], d.body["toStatus"]) for d in webhooks] == [
        ("started", "pending", "running"),
        ("succeeded", "running", "success"),
    ]
    first = webhooks[0].body
    assert first["run"] == {
        "id": run.id,
        "name": "first release",
        "kind": "release",
        "projectId": PROJECT,
        "pipelineId": PIPELINE,
        "stage": "Development",
        "status": "running",
    }
    assert first["at"].endswith("Z") and webhooks[0].headers[DELIVERY_HEADER] == first["deliveryId"]
    assert webhooks[0].headers[EVENT_HEADER] == "started"
    slack = sorted(
        (d.body for d in arrived if "text" in d.body), key=lambda body: "succeeded" in body["text"]
    )
    assert [body["text"] for body in slack] == [
        "[shop/main Development] run first release started: pending -> running",
        "[shop/main Development] run first release succeeded: running -> success",
    ]
    assert (
        slack[0]["blocks"][0]["type"] == "section" and run.id in slack[0]["blocks"][1]["elements"][0]["text"]
    )

    await _until(
        lambda views: all(v.delivery.state == "delivered" for v in views), harness.engine.notifications
    )
    log = await harness.engine.notifications.deliveries()
    assert sorted((view.delivery.event, view.delivery.state) for view in log) == [
        ("started", "delivered"),
        ("started", "delivered"),
        ("succeeded", "delivered"),
        ("succeeded", "delivered"),
    ]
    assert all(
        [(a.attempt, a.status_code, a.error) for a in view.attempts] == [(1, 200, None)] for view in log
    )


async def test_notifications__a_failing_receiver_is_retried_with_backoff(
    harness: EngineHarness,
) -> None:
    failing = Receiver(secret=SECRET, fail=2)
    clock = SteppedClock()
    try:
        await harness.seed(template(workflow(gate())))
        await subscribe(harness, failing.url, "aborted")
        run = await harness.start()
        harness.start_worker()
        await wait_for_node(harness.db, run.id, "gate", "waiting")
        await harness.engine.abort_run(run.id)
        await harness.run(run.id)
        await harness.stop_worker()  # the deliveries are driven below, on the fake clock

        deliverer = Deliverer(harness.db, clock)
        assert await deliverer.deliver_due() == 1  # 500
        assert await deliverer.deliver_due() == 0  # backing off
        clock.advance(1.9)
        assert await deliverer.deliver_due() == 0
        clock.advance(0.2)  # 2 s after the first failure
        assert await deliverer.deliver_due() == 1  # 500 again
        clock.advance(3.9)
        assert await deliverer.deliver_due() == 0
        clock.advance(0.2)  # 4 s after the second
        assert await deliverer.deliver_due() == 1  # 200
        clock.advance(3600)
        assert await deliverer.deliver_due() == 0
        await deliverer.close()

        assert [d.status for d in failing.deliveries] == [500, 500, 200]
        assert len({d.headers[DELIVERY_HEADER] for d in failing.deliveries}) == 1  # one delivery, three tries
        [view] = await harness.engine.notifications.deliveries()
        assert (view.delivery.event, view.delivery.state, view.delivery.attempts) == (
            "aborted",
            "delivered",
            3,
        )
        assert [(a.attempt, a.status_code) for a in view.attempts] == [(1, 500), (2, 500), (3, 200)]
        assert view.attempts[0].error == "HTTP 500: received"
    finally:
        failing.close()


async def test_notifications__a_delivery_is_given_up_after_its_last_attempt(harness: EngineHarness) -> None:
    # Nothing listens on this loopback port: every attempt is refused.
    await harness.seed(template(workflow(gate())))
    await subscribe(harness, "http://127.0.0.1:9/hook", "started")
    run = await harness.start()
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "gate", "waiting")
    await harness.stop_worker()
    clock = SteppedClock()
    deliverer = Deliverer(harness.db, clock)
    for _ in range(MAX_ATTEMPTS):
        assert await deliverer.deliver_due() == 1
        clock.advance(3600)
    assert await deliverer.deliver_due() == 0
    await deliverer.close()
    [view] = await harness.engine.notifications.deliveries()
    assert (view.delivery.state, view.delivery.attempts, len(view.attempts)) == (
        "failed",
        MAX_ATTEMPTS,
        MAX_ATTEMPTS,
    )
    assert all(a.status_code is None and a.error for a in view.attempts)


async def test_notifications__a_wrong_secret_is_refused_by_the_receiver(
    harness: EngineHarness, receiver: Receiver
) -> None:
    await harness.seed(template(workflow(gate())))
    request = SubscriptionRequest(
        PROJECT, "webhook", receiver.url, ["started"], secret="not-the-receivers-secret"
    )
    await harness.engine.notifications.subscribe(request)
    run = await harness.start()
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "gate", "waiting")
    [arrived] = await asyncio.to_thread(receiver.wait_for, 1)
    assert (arrived.signed, arrived.status) == (False, 401)
    await _until(lambda views: bool(views and views[0].attempts), harness.engine.notifications)
    [view] = await harness.engine.notifications.deliveries()
    assert (view.delivery.state, view.delivery.last_status_code) == ("pending", 401)


async def test_notifications__only_matching_subscriptions_get_a_delivery(
    harness: EngineHarness, receiver: Receiver
) -> None:
    await harness.seed(template(workflow(gate())))
    failed_only = await subscribe(harness, receiver.url, "failed")
    started = await subscribe(harness, receiver.url, "started")
    run = await harness.start(origin=RunOrigin(OriginKind.PERSON, "alice"))
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "gate", "waiting")
    await harness.engine.reject(run.id, "gate", "bob", "not today")
    await harness.run(run.id)
    await asyncio.to_thread(receiver.wait_for, 2)
    notifications = harness.engine.notifications
    assert [v.delivery.event for v in await notifications.deliveries(subscription_id=failed_only)] == [
        "failed"
    ]
    assert [v.delivery.event for v in await notifications.deliveries(subscription_id=started)] == ["started"]
    assert sorted(
        (d.body["event"], d.body["fromStatus"], d.body["toStatus"]) for d in receiver.deliveries
    ) == [
        ("failed", "running", "failed"),
        ("started", "pending", "running"),
    ]


async def test_notifications__unsubscribing_gives_up_what_was_not_sent(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(gate())))
    subscription = await subscribe(harness, "http://127.0.0.1:9/hook", "started")
    run = await harness.start()
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "gate", "waiting")
    await harness.stop_worker()
    await harness.engine.notifications.unsubscribe(subscription)
    assert await harness.engine.notifications.subscriptions() == []
    [view] = await harness.engine.notifications.deliveries(subscription_id=subscription)
    assert (view.delivery.state, view.delivery.last_error) == ("failed", "the subscription was removed")
    with pytest.raises(NotFoundError, match="no notification subscription 'sub-nothing'"):
        await harness.engine.notifications.unsubscribe("sub-nothing")


async def test_notifications__a_bad_subscription_names_every_problem(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(gate())))
    notifications = harness.engine.notifications
    with pytest.raises(ValidationError) as caught:
        await notifications.subscribe(
            SubscriptionRequest(
                PROJECT, "teams", "ftp://x", ["started", "deployed"], pipeline_id="nope", secret="short"
            )
        )
    assert [(issue.path, issue.message) for issue in caught.value.issues] == [
        ("kind", "unknown kind 'teams' (known: webhook, slack)"),
        ("url", "'ftp://x' is not an http:// or https:// URL"),
        (
            "events[1]",
            "unknown event 'deployed' (known: started, succeeded, failed, aborted, rolled-back, status)",
        ),
        ("secret", "must be at least 16 characters (or leave it out for a random one)"),
        ("pipeline", f"no pipeline 'nope' in project '{PROJECT}'"),
    ]
    with pytest.raises(ValidationError, match="no project 'elsewhere'"):
        await notifications.subscribe(SubscriptionRequest("elsewhere", "webhook", "http://h/x", ["started"]))
    with pytest.raises(ValidationError, match="name at least one event"):
        await notifications.subscribe(SubscriptionRequest(PROJECT, "webhook", "http://h/x", []))
    made = await notifications.subscribe(SubscriptionRequest(PROJECT, "webhook", "http://h/x", ["failed"]))
    assert len(made.secret) >= 32 and made.source == "manual"


async def _until(done: object, notifications: Notifications, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if done(await notifications.deliveries()):  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the deliveries did not reach the expected state in {timeout}s")

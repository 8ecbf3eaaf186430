"""Notifications of run events: which event a run's change is, the body sent, its signature, retries.

Pure rules: no I/O, time passed in. The engine writes one delivery per subscription in the
transaction of the run's change (the outbox) and a deliverer sends it; what it sends and how it
signs it is decided here, so a receiver can be written from this module and docs/notifications.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from releaseflow.domain.errors import Issue


class NotificationEvent(StrEnum):
    # The run began its first node (pending -> running).
    STARTED = "started"
    # The run succeeded (a release run).
    SUCCEEDED = "succeeded"
    # The run failed.
    FAILED = "failed"
    # The run was aborted.
    ABORTED = "aborted"
    # A rollback run succeeded: the stage is back where it was after an earlier run.
    ROLLED_BACK = "rolled-back"
    # Any other change of a run's status (queued, pending, aborting); a subscription to ``status``
    # receives every change, the named ones above included.
    STATUS = "status"


class ChannelKind(StrEnum):
    # A JSON document describing the event, POSTed as is.
    WEBHOOK = "webhook"
    # A Slack incoming webhook: {"text": ..., "blocks": [...]} (also what Mattermost and others accept).
    SLACK = "slack"


ALL_EVENTS = tuple(NotificationEvent)
SIGNATURE_HEADER = "X-Releaseflow-Signature"
TIMESTAMP_HEADER = "X-Releaseflow-Timestamp"
DELIVERY_HEADER = "X-Releaseflow-Delivery"
EVENT_HEADER = "X-Releaseflow-Event"
# A delivery is tried this many times before it is given up (logged as failed).
MAX_ATTEMPTS = 8
# Backoff between attempts: first wait, doubled each time, capped.
FIRST_BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 600.0


def event_of(kind: str, new_status: str) -> NotificationEvent:
    """The event a run's change to ``new_status`` is (``kind``: release or rollback)."""
    if new_status == "running":
        return NotificationEvent.STARTED
    if new_status == "success":
        return NotificationEvent.ROLLED_BACK if kind == "rollback" else NotificationEvent.SUCCEEDED
    if new_status == "failed":
        return NotificationEvent.FAILED
    if new_status == "aborted":
        return NotificationEvent.ABORTED
    return NotificationEvent.STATUS


def parse_events(
    names: Iterable[str], path: str = "events"
) -> tuple[tuple[NotificationEvent, ...], list[Issue]]:
    """Event names as typed or declared; unknown ones are issues naming the known ones."""
    events: list[NotificationEvent] = []
    issues = []
    known = ", ".join(str(event) for event in ALL_EVENTS)
    for index, name in enumerate(names):
        try:
            event = NotificationEvent(name)
        except ValueError:
            issues.append(Issue(f"{path}[{index}]", f"unknown event '{name}' (known: {known})"))
            continue
        if event not in events:
            events.append(event)
    if not events and not issues:
        issues.append(Issue(path, f"name at least one event (known: {known})"))
    return tuple(events), issues


def parse_channel(kind: str, url: str, path: str = "") -> tuple[ChannelKind | None, list[Issue]]:
    issues = []
    channel = None
    try:
        channel = ChannelKind(kind)
    except ValueError:
        known = ", ".join(str(member) for member in ChannelKind)
        issues.append(Issue(f"{path}kind", f"unknown kind '{kind}' (known: {known})"))
    if not (url.startswith("http://") or url.startswith("https://")) or len(url) > 2000 or " " in url:
        issues.append(Issue(f"{path}url", f"'{url}' is not an http:// or https:// URL"))
    return channel, issues


@dataclass(frozen=True)
class RunEventFacts:
    """What a delivery tells: the run, its place, and the change."""

    delivery_id: str
    event: str
    run_id: str
    run_name: str
    run_kind: str
    project_id: str
    pipeline_id: str
    stage: str
    from_status: str | None
    to_status: str
    cause: str
    at: datetime


def body(channel: ChannelKind, facts: RunEventFacts) -> bytes:
    """The exact bytes POSTed (and signed) for one delivery."""
    if channel is ChannelKind.SLACK:
        document: Mapping[str, Any] = _slack(facts)
    else:
        document = {
            "deliveryId": facts.delivery_id,
            "event": facts.event,
            "at": _iso(facts.at),
            "run": {
                "id": facts.run_id,
                "name": facts.run_name,
                "kind": facts.run_kind,
                "projectId": facts.project_id,
                "pipelineId": facts.pipeline_id,
                "stage": facts.stage,
                "status": facts.to_status,
            },
            "fromStatus": facts.from_status,
            "toStatus": facts.to_status,
            "cause": facts.cause,
        }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _slack(facts: RunEventFacts) -> dict[str, Any]:
    where = f"{facts.project_id}/{facts.pipeline_id} {facts.stage}"
    text = f"[{where}] run {facts.run_name} {facts.event}: {facts.from_status or 'new'} -> {facts.to_status}"
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack_escape(text)}*"}},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": _slack_escape(f"{facts.cause} · run {facts.run_id} · {_iso(facts.at)}"),
                    }
                ],
            },
        ],
    }


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn reads these three as markup; anything else is shown as written.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def signature(secret: str, timestamp: int, payload: bytes) -> str:
    """``v1=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the subscription's secret>``.

    The timestamp is signed with the body so a receiver can refuse old replays.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(secret: str, timestamp: str, payload: bytes, signed: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    try:
        expected = signature(secret, int(timestamp), payload)
    except ValueError:
        return False
    return hmac.compare_digest(expected, signed)


def headers(secret: str, delivery_id: str, event: str, payload: bytes, now: datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, timestamp, payload),
        TIMESTAMP_HEADER: str(timestamp),
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event,
    }


def next_attempt(attempts_made: int, now: datetime) -> datetime | None:
    """When to try again after ``attempts_made`` failed attempts; None: give up."""
    if attempts_made >= MAX_ATTEMPTS:
        return None
    delay = min(FIRST_BACKOFF_SECONDS * 2 ** (attempts_made - 1), MAX_BACKOFF_SECONDS)
    return now + timedelta(seconds=delay)

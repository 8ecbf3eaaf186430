"""Notification subscriptions, the outbox of deliveries and the log of their attempts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from releaseflow.domain.notifications import NotificationEvent
from releaseflow.store.database import Row, Transaction, from_epoch, to_epoch

# One row per subscription matching the run's project (and pipeline) and the event; the delivery id is
# "<run>/<status>/<subscription>": a run reaches each status at most once, so it is unique, and the
# same change always has the same id (receivers deduplicate on it). A rollback run's success is
# told as "rolled-back".
_ENQUEUE = (
    "INSERT INTO notification_deliveries"
    " (id, subscription_id, run_id, event, from_status, to_status, cause, at, state, attempts, due_at)"
    " SELECT e.run_id || '/' || CAST(? AS TEXT) || '/' || s.id, s.id, e.run_id, e.event,"
    " CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION), 'pending', 0,"
    " CAST(? AS DOUBLE PRECISION)"
    " FROM (SELECT r.id AS run_id, f.project_id, f.pipeline_id,"
    " CASE WHEN r.kind = 'rollback' AND CAST(? AS TEXT) = 'succeeded' THEN 'rolled-back'"
    " ELSE CAST(? AS TEXT) END AS event"
    " FROM runs r JOIN release_flows f ON f.id = r.flow_id WHERE r.id = ?) e"
    " JOIN notification_subscriptions s ON s.project_id = e.project_id"
    " AND (s.pipeline_id IS NULL OR s.pipeline_id = e.pipeline_id)"
    " WHERE s.events LIKE CAST(? AS TEXT) || e.event || CAST(? AS TEXT) OR s.events LIKE CAST(? AS TEXT)"
)


def enqueue(
    tx: Transaction,
    run_id: str,
    event: str,
    from_status: str | None,
    to_status: str,
    cause: str,
    at: datetime,
) -> None:
    """Write a delivery for every subscription that wants this run event, when the transaction
    commits (with the event row): one statement, whatever the number of subscriptions.
    ``event``: the event's name for a release run (a rollback's success becomes rolled-back)."""
    moment = to_epoch(at)
    tx.defer_insert(
        _ENQUEUE,
        (
            to_status,
            from_status,
            to_status,
            cause,
            moment,
            moment,
            event,
            event,
            run_id,
            "%,",
            ",%",
            f"%,{NotificationEvent.STATUS},%",
        ),
    )


@dataclass(frozen=True)
class SubscriptionRecord:
    id: str
    project_id: str
    pipeline_id: str | None
    kind: str
    url: str
    secret: str
    events: tuple[str, ...]
    source: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> SubscriptionRecord:
        created_at = from_epoch(row["created_at"])
        assert created_at is not None
        return cls(
            id=row["id"],
            project_id=row["project_id"],
            pipeline_id=row["pipeline_id"],
            kind=row["kind"],
            url=row["url"],
            secret=row["secret"],
            events=tuple(name for name in row["events"].split(",") if name),
            source=row["source"],
            created_at=created_at,
        )


async def insert_subscription(tx: Transaction, record: SubscriptionRecord) -> None:
    await tx.execute(
        "INSERT INTO notification_subscriptions"
        " (id, project_id, pipeline_id, kind, url, secret, events, source, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.id,
            record.project_id,
            record.pipeline_id,
            record.kind,
            record.url,
            record.secret,
            "," + ",".join(record.events) + ",",
            record.source,
            to_epoch(record.created_at),
        ),
    )


async def list_subscriptions(tx: Transaction, project_id: str | None = None) -> list[SubscriptionRecord]:
    if project_id is None:
        rows = await tx.fetchall("SELECT * FROM notification_subscriptions ORDER BY created_at, id")
    else:
        rows = await tx.fetchall(
            "SELECT * FROM notification_subscriptions WHERE project_id = ? ORDER BY created_at, id",
            (project_id,),
        )
    return [SubscriptionRecord.from_row(row) for row in rows]


async def delete_subscription(tx: Transaction, subscription_id: str, now: datetime) -> bool:
    """Remove a subscription; what it had not delivered yet is given up, visibly, in its log."""
    removed = await tx.execute("DELETE FROM notification_subscriptions WHERE id = ?", (subscription_id,))
    if removed:
        await tx.execute(
            "UPDATE notification_deliveries SET state = 'failed', due_at = NULL,"
            " last_error = 'the subscription was removed' WHERE subscription_id = ? AND state = 'pending'",
            (subscription_id,),
        )
    return removed > 0


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    subscription_id: str
    run_id: str
    event: str
    from_status: str | None
    to_status: str
    cause: str
    at: datetime
    state: str
    attempts: int
    due_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> DeliveryRecord:
        at = from_epoch(row["at"])
        assert at is not None
        return cls(
            id=row["id"],
            subscription_id=row["subscription_id"],
            run_id=row["run_id"],
            event=row["event"],
            from_status=row["from_status"],
            to_status=row["to_status"],
            cause=row["cause"],
            at=at,
            state=row["state"],
            attempts=int(row["attempts"]),
            due_at=from_epoch(row["due_at"]),
            last_status_code=row["last_status_code"],
            last_error=row["last_error"],
            delivered_at=from_epoch(row["delivered_at"]),
        )


async def claim_due(tx: Transaction, now: datetime, hold_until: datetime, limit: int) -> list[DeliveryRecord]:
    """Take up to ``limit`` due deliveries for one attempt each: their next due time moves to
    ``hold_until``, so a sender that dies mid-send leaves them to be sent again then (at least once)."""
    lock = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgresql" else ""
    rows = await tx.fetchall(
        "SELECT id FROM notification_deliveries WHERE state = 'pending' AND due_at <= ?"
        f" ORDER BY due_at LIMIT ?{lock}",
        (to_epoch(now), limit),
    )
    ids = [row["id"] for row in rows]
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    await tx.execute(
        f"UPDATE notification_deliveries SET attempts = attempts + 1, due_at = ? WHERE id IN ({marks})",
        [to_epoch(hold_until), *ids],
    )
    claimed = await tx.fetchall(f"SELECT * FROM notification_deliveries WHERE id IN ({marks})", ids)
    return sorted((DeliveryRecord.from_row(row) for row in claimed), key=lambda record: record.at)


async def make_all_due(tx: Transaction, now: datetime) -> None:
    await tx.execute(
        "UPDATE notification_deliveries SET due_at = ? WHERE state = 'pending' AND due_at > ?",
        (to_epoch(now), to_epoch(now)),
    )


async def record_attempt(
    tx: Transaction,
    delivery: DeliveryRecord,
    now: datetime,
    status_code: int | None,
    error: str | None,
    duration_ms: float,
    next_due: datetime | None,
) -> None:
    """Log one attempt and decide the delivery: delivered (no error), again at ``next_due``, or failed."""
    await tx.execute(
        "INSERT INTO notification_attempts (delivery_id, attempt, at, status_code, error, duration_ms)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (delivery.id, delivery.attempts, to_epoch(now), status_code, error, duration_ms),
    )
    if error is None:
        state, due = "delivered", None
    elif next_due is not None:
        state, due = "pending", to_epoch(next_due)
    else:
        state, due = "failed", None
    await tx.execute(
        "UPDATE notification_deliveries SET state = ?, due_at = ?, last_status_code = ?, last_error = ?,"
        " delivered_at = ? WHERE id = ? AND attempts = ?",
        (
            state,
            due,
            status_code,
            error,
            to_epoch(now) if error is None else None,
            delivery.id,
            delivery.attempts,
        ),
    )


@dataclass(frozen=True)
class AttemptRecord:
    delivery_id: str
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float


async def list_deliveries(
    tx: Transaction, subscription_ids: Sequence[str], limit: int
) -> tuple[list[DeliveryRecord], list[AttemptRecord]]:
    """The newest deliveries of these subscriptions, with every attempt of each."""
    if not subscription_ids:
        return [], []
    marks = ", ".join("?" for _ in subscription_ids)
    rows = await tx.fetchall(
        f"SELECT * FROM notification_deliveries WHERE subscription_id IN ({marks})"
        " ORDER BY at DESC, id LIMIT ?",
        [*subscription_ids, limit],
    )
    deliveries = [DeliveryRecord.from_row(row) for row in rows]
    if not deliveries:
        return [], []
    ids = [delivery.id for delivery in deliveries]
    attempt_rows = await tx.fetchall(
        "SELECT * FROM notification_attempts WHERE delivery_id IN"
        f" ({', '.join('?' for _ in ids)}) ORDER BY delivery_id, attempt, id",
        ids,
    )
    attempts = []
    for row in attempt_rows:
        at = from_epoch(row["at"])
        assert at is not None
        attempts.append(
            AttemptRecord(
                row["delivery_id"], row["attempt"], at, row["status_code"], row["error"], row["duration_ms"]
            )
        )
    return deliveries, attempts


async def run_places(tx: Transaction, run_ids: Sequence[str]) -> dict[str, Row]:
    """What a delivery's body says about each run: its name, kind, project, pipeline and stage."""
    if not run_ids:
        return {}
    marks = ", ".join("?" for _ in run_ids)
    rows = await tx.fetchall(
        "SELECT r.id, r.name, r.seq, r.kind, f.project_id, f.pipeline_id, f.stage"
        f" FROM runs r JOIN release_flows f ON f.id = r.flow_id WHERE r.id IN ({marks})",
        list(run_ids),
    )
    return {row["id"]: row for row in rows}


async def subscriptions_by_id(tx: Transaction, ids: Sequence[str]) -> dict[str, SubscriptionRecord]:
    if not ids:
        return {}
    marks = ", ".join("?" for _ in ids)
    rows = await tx.fetchall(f"SELECT * FROM notification_subscriptions WHERE id IN ({marks})", list(ids))
    return {row["id"]: SubscriptionRecord.from_row(row) for row in rows}

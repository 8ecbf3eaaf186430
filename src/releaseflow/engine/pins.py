"""Pins: after a rollback a stage stays rolled back until someone decides otherwise.

While a stage is pinned, runs from automatic origins (git push, webhook) are refused and kept as
skipped triggers with the reason; a run by a person or a token is allowed and clears the pin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from releaseflow.domain.errors import ConflictError, Issue, NotFoundError, ValidationError
from releaseflow.domain.run_origin import RunOrigin
from releaseflow.engine.clock import Clock
from releaseflow.store import catalog, history
from releaseflow.store.database import Database, Transaction
from releaseflow.store.records import FlowRecord


class PinnedError(ConflictError):
    """A run from an automatic origin was refused because the stage is pinned."""


@dataclass(frozen=True)
class Pin:
    by: str
    reason: str
    run_id: str | None
    at: datetime

    def summary(self) -> str:
        """Who, when and why: "by alice at 2026-03-04 05:06:07 UTC: rolled back to run v1"."""
        return f"by {self.by or 'someone'} at {self.at:%Y-%m-%d %H:%M:%S} UTC: {self.reason}"

    def describe(self) -> str:
        return f"pinned {self.summary()}"


async def read_pin(tx: Transaction, flow_id: str) -> Pin | None:
    row = await history.get_pin(tx, flow_id)
    if row is None:
        return None
    return Pin(row["pinned_by"], row["reason"], row["run_id"], row["pinned_at"])


@dataclass(frozen=True)
class OriginAdmission:
    refusal: str | None = None  # why the run may not start (recorded as a skipped trigger)
    cleared: Pin | None = None  # the pin a run by hand cleared


async def admit_origin(tx: Transaction, flow_id: str, origin: RunOrigin, now: datetime) -> OriginAdmission:
    """Whether a run of this origin may start on the stage: a run by hand clears the pin; an
    automatic one is refused, the refusal recorded as a skipped trigger in this transaction."""
    pin = await read_pin(tx, flow_id)
    if pin is None:
        return OriginAdmission()
    if not origin.automatic:
        await history.clear_pin(tx, flow_id)
        return OriginAdmission(cleared=pin)
    reason = (
        f"{origin.label()} did not start a run: the stage is {pin.describe()}"
        " (unpin it, or start a run by hand, to deploy over it)"
    )
    await history.record_skipped_trigger(
        tx, flow_id, origin_kind=str(origin.kind), origin_by=origin.by, reason=reason, at=now
    )
    return OriginAdmission(refusal=reason)


async def pin_stage(
    db: Database, clock: Clock, project_id: str, pipeline_id: str, stage: str, *, by: str, reason: str
) -> Pin:
    """Pin a stage by hand: automatic triggers stop deploying to it until it is unpinned."""
    if not by.strip() or not reason.strip():
        raise ValidationError([Issue("pin", "say who pins the stage and why")], subject="pin")
    now = clock.now()
    async with db.transaction() as tx:
        flow = await stage_flow(tx, project_id, pipeline_id, stage)
        await history.set_pin(tx, flow.id, by=by, reason=reason, run_id=None, at=now)
    return Pin(by, reason, None, now)


async def unpin_stage(db: Database, project_id: str, pipeline_id: str, stage: str) -> Pin | None:
    """Clear a stage's pin; returns the pin that was cleared (None: it was not pinned)."""
    async with db.transaction() as tx:
        flow = await stage_flow(tx, project_id, pipeline_id, stage)
        pin = await read_pin(tx, flow.id)
        await history.clear_pin(tx, flow.id)
    return pin


async def current_pin(db: Database, project_id: str, pipeline_id: str, stage: str) -> Pin | None:
    """The stage's pin (None: not pinned)."""
    async with db.read() as tx:
        return await read_pin(tx, (await stage_flow(tx, project_id, pipeline_id, stage)).id)


async def stage_flow(tx: Transaction, project_id: str, pipeline_id: str, stage: str) -> FlowRecord:
    flow = await catalog.get_flow(tx, project_id, pipeline_id, stage)
    if flow is None:
        raise NotFoundError(f"stage '{stage}' of pipeline '{project_id}/{pipeline_id}' has no release flow")
    return flow

"""The transitions of a run, or of every run of a stage, as they are recorded: what live views follow.

It reads the events table by id (ids only grow), so it works across processes on PostgreSQL and
SQLite alike: a worker in another process records a transition, and the next poll finds it. A
reader resumes after the last id it saw (the API's ``Last-Event-ID``). Nothing in-process announces
new events, so the poll interval bounds the delay (half a second by default).

``follow_events`` yields batches: a non-empty batch holds the next events, oldest first; an empty
batch says "nothing new for a heartbeat interval" (a stream writes a keep-alive then). It ends when
its lifetime is over, or, following one run, once that run has concluded and all its events were
yielded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from releaseflow.domain.errors import NotFoundError
from releaseflow.domain.statuses import TERMINAL_RUN_STATUSES
from releaseflow.store import catalog
from releaseflow.store import runs as run_store
from releaseflow.store.database import Database
from releaseflow.store.records import EventRecord

POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0
LIFETIME_SECONDS = 600.0
# At most this many events per read, so that a reader far behind catches up in bounded steps.
BATCH_LIMIT = 500


@dataclass(frozen=True)
class EventScope:
    """Whose events: one run (``run_id``) or every run of one stage's flow (``flow_id``)."""

    run_id: str | None = None
    flow_id: str | None = None


@dataclass(frozen=True)
class Timing:
    poll_seconds: float = POLL_SECONDS
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    lifetime_seconds: float = LIFETIME_SECONDS


async def run_scope(db: Database, run_id: str) -> EventScope:
    async with db.read() as tx:
        if await run_store.get_run(tx, run_id) is None:
            raise NotFoundError(f"no run '{run_id}'")
    return EventScope(run_id=run_id)


async def stage_scope(db: Database, project_id: str, pipeline_id: str, stage: str) -> EventScope:
    async with db.read() as tx:
        flow = await catalog.get_flow(tx, project_id, pipeline_id, stage, include_archived=True)
    if flow is None:
        raise NotFoundError(f"stage '{stage}' of pipeline '{project_id}/{pipeline_id}' has no release flow")
    return EventScope(flow_id=flow.id)


async def follow_events(
    db: Database, scope: EventScope, after_id: int = 0, timing: Timing = Timing()
) -> AsyncIterator[list[EventRecord]]:
    """Batches of the scope's events after ``after_id`` as they are recorded (see the module)."""
    ends = time.monotonic() + timing.lifetime_seconds
    quiet_since = time.monotonic()
    while time.monotonic() < ends:
        batch, finished = await _read(db, scope, after_id)
        if batch:
            after_id = batch[-1].id
            quiet_since = time.monotonic()
            yield batch
            continue  # a full batch may have more behind it
        if finished:
            return
        if time.monotonic() - quiet_since >= timing.heartbeat_seconds:
            quiet_since = time.monotonic()
            yield []
        await asyncio.sleep(min(timing.poll_seconds, max(ends - time.monotonic(), 0)))


async def _read(db: Database, scope: EventScope, after_id: int) -> tuple[list[EventRecord], bool]:
    """The next events, and whether the followed run has concluded with nothing left to read."""
    async with db.read() as tx:
        if scope.run_id is not None:
            # The run's status is read first: a transition recorded after it is still read below.
            run = await run_store.get_run(tx, scope.run_id)
            events = await run_store.list_events(tx, scope.run_id, after_id=after_id)
            concluded = run is None or run.status in TERMINAL_RUN_STATUSES
            return events[:BATCH_LIMIT], concluded and not events
        assert scope.flow_id is not None
        events = await run_store.list_flow_events(tx, scope.flow_id, after_id=after_id, limit=BATCH_LIMIT)
        return events, False

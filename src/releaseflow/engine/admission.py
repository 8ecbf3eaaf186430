"""Concurrency per release flow: who starts now, who waits, and who is let in when a run ends."""

from __future__ import annotations

from datetime import datetime

from releaseflow.domain.statuses import TERMINAL_RUN_STATUSES, RunStatus
from releaseflow.engine.advance import advance_run
from releaseflow.engine.templates import TemplateCache
from releaseflow.engine.transitions import transition_run
from releaseflow.store import runs as run_store
from releaseflow.store.database import Transaction
from releaseflow.store.records import RunRecord


async def settle(tx: Transaction, run_id: str, now: datetime, templates: TemplateCache) -> RunRecord:
    """Advance a run; when that concluded it, let the next queued run of its flow start."""
    run = await advance_run(tx, run_id, now, templates)
    if run.status in TERMINAL_RUN_STATUSES:
        await admit_next_queued(tx, run.flow_id, now, templates)
    return run


async def admit_next_queued(tx: Transaction, flow_id: str, now: datetime, templates: TemplateCache) -> None:
    """Start the oldest queued run of a flow if no run holds its slot any more."""
    if await run_store.runs_holding_slot(tx, flow_id):
        return
    queued = await run_store.queued_runs(tx, flow_id)
    if not queued:
        return
    first = queued[0]
    await transition_run(
        tx, first.id, RunStatus.QUEUED, RunStatus.PENDING, "admitted: the runs before it ended", now
    )
    await settle(tx, first.id, now, templates)

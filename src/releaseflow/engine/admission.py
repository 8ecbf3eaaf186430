"""Concurrency per release flow: who starts now, who waits, and who is let in when a run ends."""

from __future__ import annotations

from datetime import datetime

from releaseflow.domain.statuses import TERMINAL_RUN_STATUSES, RunStatus
from releaseflow.engine.advance import Advanced, Lease, advance_run
from releaseflow.engine.templates import TemplateCache
from releaseflow.engine.transitions import transition_run
from releaseflow.store import runs as run_store
from releaseflow.store.database import Transaction
from releaseflow.store.records import RunRecord


async def settle(
    tx: Transaction,
    run_id: str,
    now: datetime,
    templates: TemplateCache,
    *,
    lease: Lease | None = None,
    locked: RunRecord | None = None,
) -> Advanced:
    """Advance a run; when that concluded it, let the next queued run of its flow start.

    A loop, not a recursion: a run admitted from the queue is advanced in turn, and if it ends at
    once (nothing to do) the next one is admitted, and so on. Returns what advancing ``run_id`` did,
    with every leaf made due along the way (admitted runs' too), for which workers are woken; with
    ``lease``, leaves that became ready are leased to that worker instead, as far as it has room.
    ``locked``: the run ``run_id``, already read under its lock by the caller.
    """
    first: Advanced | None = None
    made_due: list[str] = []
    todo = [run_id]
    while todo:
        next_id = todo.pop()
        advanced = await advance_run(
            tx, next_id, now, templates, lease=lease, locked=locked if next_id == run_id else None
        )
        first = first or advanced
        made_due.extend(advanced.made_due)
        if advanced.run.status in TERMINAL_RUN_STATUSES:
            admitted = await admit_next_queued(tx, advanced.run.flow_id, now)
            if admitted is not None:
                todo.append(admitted)
    assert first is not None
    if made_due:
        tx.wake_workers()
    return Advanced(first.run, made_due)


async def admit_next_queued(tx: Transaction, flow_id: str, now: datetime) -> str | None:
    """Admit the oldest queued run of a flow if no run holds its slot any more; returns its id."""
    if await run_store.runs_holding_slot(tx, flow_id):
        return None
    queued = await run_store.queued_runs(tx, flow_id)
    if not queued:
        return None
    first = queued[0]
    await transition_run(
        tx, first.id, RunStatus.QUEUED, RunStatus.PENDING, "admitted: the runs before it ended", now
    )
    return first.id

"""The runs the delivery figures of a window are worked out from: those since the last run before the
window that said how the stage was, not the stage's whole history.

Before the window, runs matter to its figures only through an incident still open when it begins: its
bad releases started it before the window, so it is not one of the window's. The last run before the
window that is either good or bad (a successful run, or a failed release; failed rollbacks and
aborted runs are neither) settles that: a good one closed any incident, a bad one is part of the open
one, and either way nothing before it changes a figure. From it on, with the runs its rollbacks
returned to, the figures are those of the whole history (``tests/integration/test_metrics_window.py``
compares both on random histories); a 30-day window on a long history reads about a month of runs.
"""

from __future__ import annotations

from datetime import datetime

from releaseflow.store import runs as run_store
from releaseflow.store.database import Row, Transaction, to_epoch


async def window_outlines(tx: Transaction, flow_id: str, since: datetime | None) -> list[Row]:
    """Outlines of the runs of the flow that the figures of [since, now] depend on."""
    epoch = to_epoch(since)
    boundary = None if epoch is None else await run_store.last_verdict_before(tx, flow_id, epoch)
    if boundary is None:
        return await run_store.run_outlines(tx, flow_id)
    outlines = await run_store.run_outlines(tx, flow_id, concluded_since=boundary)
    seen = {row["id"] for row in outlines}
    targets = await run_store.rollback_targets(tx, flow_id, concluded_since=boundary)
    return outlines + [row for row in targets if row["id"] not in seen]

"""The delivery figures of a window, read from the last good run before it, are those of the whole
history: random histories written into the database, on both databases."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from tests.integration.support import PIPELINE, PROJECT, EngineHarness, deploy, template, workflow
from tests.run_histories import random_history

from releaseflow.domain.delivery_metrics import RunFact, delivery_metrics
from releaseflow.engine.insights import stage_metrics
from releaseflow.engine.metrics_window import window_outlines
from releaseflow.store import catalog
from releaseflow.store.database import to_epoch
from releaseflow.store.records import dump_json

STAGE = "Development"


async def written(harness: EngineHarness, runs: list[RunFact]) -> str:
    """The runs, written into the stage's flow as they are kept; the flow's id."""
    await harness.seed(template(workflow(deploy("deploy"))))
    async with harness.db.transaction() as tx:
        flow = await catalog.get_flow(tx, PROJECT, PIPELINE, STAGE)
        assert flow is not None
        await tx.executemany(
            "INSERT INTO runs (id, flow_id, flow_version, seq, kind, rollback_of, triggered_by, status,"
            " arguments, overrides, release_node_overrides, document, created_at, started_at,"
            " concluded_at, updated_at)"
            " VALUES (?, ?, 1, ?, ?, ?, 'test', ?, '{}', '{}', '{}', ?, ?, ?, ?, ?)",
            [
                (
                    run.id, flow.id, seq, run.kind, run.rollback_of, run.status, dump_json({}),
                    to_epoch(run.created_at), to_epoch(run.created_at), to_epoch(run.concluded_at),
                    to_epoch(run.created_at),
                )
                for seq, run in enumerate(runs, start=1)
            ],
        )  # fmt: skip
    return flow.id


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_window_figures__the_same_as_from_the_whole_history(harness: EngineHarness, seed: int) -> None:
    runs = random_history(random.Random(seed), 300)
    flow_id = await written(harness, runs)
    now = runs[-1].created_at + timedelta(hours=6)

    for hours_back in range(3, 320, 9):  # windows from the last hours to the whole history
        since = now - timedelta(hours=hours_back)
        found = await stage_metrics(harness.db, PROJECT, PIPELINE, STAGE, now=now, since=since)

        expected = delivery_metrics(runs, [], now=now, since=since)
        assert found.metrics == expected, f"since {hours_back} hours back"
        async with harness.db.read() as tx:
            read = len(await window_outlines(tx, flow_id, since))
        if hours_back <= 72:
            assert read < len(runs) / 2, f"{read} of {len(runs)} runs read for {hours_back} hours"

"""What notifications cost: the outbox written with each run change, and delivery to a real receiver.

``python -m tests.benchmarks.notifications_bench`` (SQLite in a temporary file, a threaded HTTP
receiver on loopback). Prints, for 0 and for 10 matching subscriptions, how many runs per second are
started and aborted (each abort is a status change that writes one delivery per subscription, in its
own transaction); then how many deliveries per second one deliverer sends (signed, each answer
recorded). Figures, not assertions.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.integration.http_receiver import Receiver

from releaseflow.engine.clock import SystemClock
from releaseflow.engine.commands import Engine, RunRequest
from releaseflow.engine.deliverer import Deliverer
from releaseflow.engine.notifications import SubscriptionRequest
from releaseflow.store import catalog
from releaseflow.store.database import Database, open_database
from releaseflow.store.migrate import migrate

RUNS = int(os.environ.get("BENCH_RUNS", "300"))
SUBSCRIPTIONS = 10
GATE = {"apiVersion": "v1.2", "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": [
    {"kind": "Approval", "ref": "gate", "spec": {"amount": 1}}]}}}  # fmt: skip


async def _seed(db: Database, stage: str) -> None:
    now = datetime.now(UTC)
    async with db.transaction() as tx:
        await catalog.save_project(tx, "bench", "Bench", "", now)
        await catalog.save_pipeline(tx, "bench", "notify", "Notify", "", now)
        await catalog.save_stage(tx, "bench", "notify", stage, 0)
        await catalog.add_flow_version(tx, "bench", "notify", stage, GATE, "bench", now)


async def _runs_per_second(engine: Engine, stage: str) -> float:
    began = time.perf_counter()
    for _ in range(RUNS):
        run = await engine.start_run("bench", "notify", stage, RunRequest())
        await engine.abort_run(run.id)
    return RUNS / (time.perf_counter() - began)


async def main() -> None:
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as folder:
        db = await open_database(f"sqlite:///{Path(folder) / 'bench.db'}")
        try:
            await migrate(db)
            engine = Engine(db, SystemClock())
            await _seed(db, "Quiet")
            quiet = await _runs_per_second(engine, "Quiet")
            async with db.transaction() as tx:
                await catalog.save_stage(tx, "bench", "notify", "Loud", 1)
                await catalog.add_flow_version(
                    tx, "bench", "notify", "Loud", GATE, "bench", datetime.now(UTC)
                )
            # Subscriptions of another project would not match: these all do (all status changes).
            request = SubscriptionRequest("bench", "webhook", receiver.url, ["status"], pipeline_id="notify")
            for _ in range(SUBSCRIPTIONS):
                await engine.notifications.subscribe(request)
            loud = await _runs_per_second(engine, "Loud")
            deliverer = Deliverer(db, SystemClock())
            began = time.perf_counter()
            sent = 0
            while (batch := await deliverer.deliver_due()) > 0:
                sent += batch
            elapsed = time.perf_counter() - began
            await deliverer.close()
        finally:
            await db.close()
            receiver.close()
    print(f"runs started and aborted per second, no subscription:   {quiet:8.0f}")
    print(f"runs started and aborted per second, {SUBSCRIPTIONS} subscriptions: {loud:8.0f}")
    print(f"deliveries sent per second (one deliverer, loopback):   {sent / elapsed:8.0f}  ({sent} sent)")


if __name__ == "__main__":
    asyncio.run(main())

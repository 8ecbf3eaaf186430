"""How long the history commands take on a long history: ``python -m tests.benchmarks.history_bench``.

A SQLite database (a temporary file) gets one stage with N concluded runs (every 10th failed, every
50th a rollback to the run three before it), each deploying two services, written straight into the
tables. Then each read is timed ``--repeat`` times and the median and max printed: delivery figures
of the stage (``stage_metrics``: the whole history, and a 30-day window), the newest 50 changes of its
timeline, the stages side by side, the diff of two runs, and the plan of a new run; then the longest
the event loop stalled while the whole-history figures were worked out. Reports figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from releaseflow.engine.commands import RunRequest
from releaseflow.engine.insights import compare_pipeline, diff_runs, stage_metrics, stage_timeline
from releaseflow.engine.plan import plan_run
from releaseflow.store import catalog
from releaseflow.store.database import Database, open_database, to_epoch
from releaseflow.store.migrate import migrate
from releaseflow.store.records import dump_json

PROJECT, PIPELINE, STAGE = "shop", "main", "Production"
FLOW = {
    "apiVersion": "v1.2",
    "spec": {
        "kind": "Workflow",
        "spec": {
            "type": "parallel",
            "steps": [
                {
                    "kind": "Release",
                    "ref": f"deploy-{service}",
                    "spec": {
                        "type": "registry",
                        "origin": {"imagePath": "example/app:next"},
                        "target": {"id": service, "type": "service"},
                    },
                }
                for service in ("api", "web")
            ],
        },
    },
}


START = datetime(2026, 1, 1, tzinfo=UTC)


async def seed(db: Database, runs: int, start: datetime = START) -> list[str]:
    """N runs an hour apart from ``start``."""
    async with db.transaction() as tx:
        await catalog.save_project(tx, PROJECT, "Shop", "", start)
        for service in ("api", "web"):
            await catalog.save_resource(tx, PROJECT, service, "service", "docker", {}, start)
        await catalog.save_pipeline(tx, PROJECT, PIPELINE, "Main", "", start)
        await catalog.save_stage(tx, PROJECT, PIPELINE, STAGE, 0)
        await catalog.set_stage_resources(tx, PROJECT, PIPELINE, STAGE, ["api", "web"])
        await catalog.add_flow_version(tx, PROJECT, PIPELINE, STAGE, FLOW, "bench", start)
        flow = await catalog.get_flow(tx, PROJECT, PIPELINE, STAGE)
        assert flow is not None
    ids = [str(uuid.uuid4()) for _ in range(runs)]
    run_rows: list[tuple[Any, ...]] = []
    deploy_rows: list[tuple[Any, ...]] = []
    for index, run_id in enumerate(ids):
        created = to_epoch(start + timedelta(hours=index))
        failed = index % 10 == 9
        rollback = index % 50 == 49
        run_rows.append(
            (
                run_id, flow.id, 1, index + 1, "rollback" if rollback else "release",
                ids[index - 3] if rollback else None, "bench", "failed" if failed else "success",
                "{}", "{}", "{}", dump_json(FLOW), created, created, created + 600, created + 600,
            )
        )  # fmt: skip
        if not failed:
            for service in ("api", "web"):
                artifact = {"kind": "image", "image": f"example/{service}:{index}"}
                deploy_rows.append(
                    (PROJECT, service, PIPELINE, STAGE, dump_json(artifact), run_id, "spec", created + 300)
                )
    async with db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO runs (id, flow_id, flow_version, seq, kind, rollback_of, triggered_by, status,"
            " arguments, overrides, release_node_overrides, document, created_at, started_at,"
            " concluded_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            run_rows,
        )
        await tx.executemany(
            "INSERT INTO release_history (project_id, resource_id, pipeline_id, stage, artifact, run_id,"
            " node_path, deployed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            deploy_rows,
        )
        await tx.execute(
            "INSERT INTO release_state (project_id, resource_id, pipeline_id, stage, artifact, run_id,"
            " node_path, deployed_at) SELECT project_id, resource_id, pipeline_id, stage, artifact, run_id,"
            " node_path, deployed_at FROM release_history WHERE id IN"
            " (SELECT MAX(id) FROM release_history GROUP BY resource_id)"
        )
    return ids


async def timed(repeat: int, action: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    await action()  # warm-up
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        await action()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), max(samples)


async def bench(runs: int, repeat: int) -> list[tuple[str, float, float]]:
    with tempfile.TemporaryDirectory(prefix="releaseflow-history-bench-") as directory:
        db = await open_database(f"sqlite://{Path(directory) / 'bench.db'}")
        try:
            await migrate(db)
            ids = await seed(db, runs)
            now = START + timedelta(hours=runs + 1)
            reads: dict[str, Callable[[], Awaitable[object]]] = {
                "metrics (whole history)": lambda: stage_metrics(db, PROJECT, PIPELINE, STAGE, now=now),
                "metrics (last 30 days)": lambda: stage_metrics(
                    db, PROJECT, PIPELINE, STAGE, now=now, since=now - timedelta(days=30)
                ),
                "timeline (newest 50)": lambda: stage_timeline(db, PROJECT, PIPELINE, STAGE, limit=50),
                "state side by side": lambda: compare_pipeline(db, PROJECT, PIPELINE),
                "diff of two runs": lambda: diff_runs(db, ids[-2], ids[-1]),
                "plan of a new run": lambda: plan_run(db, PROJECT, PIPELINE, STAGE, RunRequest(), now=now),
            }
            figures = [(name, *await timed(repeat, read)) for name, read in reads.items()]
            pause = await longest_pause(reads["metrics (whole history)"])
            return [*figures, ("event loop's longest pause during metrics (whole history)", pause, pause)]
        finally:
            await db.close()


async def longest_pause(action: Callable[[], Awaitable[object]]) -> float:
    """The longest the event loop went without running a 1 ms ticker while ``action`` ran, in ms:
    how long a server doing ``action`` keeps every other request waiting."""
    longest = 0.0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest, last = max(longest, now - last), now

    ticker = asyncio.create_task(tick())
    await action()
    done.set()
    await ticker
    return longest * 1000


def report(
    prog: str,
    default_runs: list[int],
    bench_one: Callable[[int, int], Awaitable[list[tuple[str, float, float]]]],
    *,
    column: str = "runs in the stage",
    label: Callable[[int], str] = lambda runs: f"{runs:,}",
) -> None:
    """Parse ``--runs`` and ``--repeat``, run ``bench_one`` for each size and print its table."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--runs", type=int, nargs="+", default=default_runs)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"| {column} | read | median ms | max ms |")
    print("|---|---|---|---|")
    for runs in args.runs:
        for name, median, worst in asyncio.run(bench_one(runs, args.repeat)):
            print(f"| {label(runs)} | {name} | {median:.1f} | {worst:.1f} |", flush=True)


def main() -> None:
    report("python -m tests.benchmarks.history_bench", [1_000, 10_000, 100_000], bench)


if __name__ == "__main__":
    main()

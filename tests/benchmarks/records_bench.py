"""How long the record reads of the API take on a long history: ``python -m tests.benchmarks.records_bench``.

A SQLite database (a temporary file) gets one project whose stage has N concluded runs, each with a
Build, a Release (a deploy to a service), a JobRun and an AddonBackup node, written straight into the
tables. Then each read is timed ``--repeat`` times and the median and max printed: the first and a deep page
of 50 records (what ``GET /api/projects/{id}/records`` reads), the first page of one kind and of one
resource, one run's records, and the project whole (``GET /api/projects/{id}``: every resource's
latest record). Reports figures; asserts nothing.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.benchmarks.history_bench import report, timed

from releaseflow.engine.platform_records import RecordFilter, RecordKind, records_page
from releaseflow.engine.projects import project_detail
from releaseflow.store import catalog
from releaseflow.store.database import Database, open_database, to_epoch
from releaseflow.store.migrate import migrate
from releaseflow.store.records import dump_json

PROJECT, PIPELINE, STAGE = "shop", "main", "Production"
RESOURCES = (("builder", "build_service"), ("web", "service"), ("migrate", "job"), ("db", "addon"))
# (kind, ref, resolved code, response data) of each node of a run; ``{n}`` is the run's number.
NODES = (
    ("Build", "build", {"spec": {"id": "builder", "type": "service"}}, {"id": "bld-{n}", "sha": "c{n}"}),
    (
        "Release",
        "deploy",
        {"spec": {"type": "build", "target": {"id": "web", "type": "service"}}},
        {"deploymentId": "dep-{n}", "artifact": {"kind": "build", "buildId": "bld-{n}"}},
    ),
    ("JobRun", "migrate", {"spec": {"jobId": "migrate"}}, {"id": "run-{n}", "exitCode": 0}),
    ("AddonBackup", "backup", {"spec": {"addonId": "db"}}, {"id": "bk-{n}"}),
)
FLOW = {"apiVersion": "v1.2", "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": []}}}


async def seed(db: Database, runs: int) -> list[str]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.transaction() as tx:
        await catalog.save_project(tx, PROJECT, "Shop", "", start)
        for resource_id, kind in RESOURCES:
            await catalog.save_resource(tx, PROJECT, resource_id, kind, "local", {}, start)
        await catalog.save_pipeline(tx, PROJECT, PIPELINE, "Main", "", start)
        await catalog.save_stage(tx, PROJECT, PIPELINE, STAGE, 0)
        await catalog.set_stage_resources(tx, PROJECT, PIPELINE, STAGE, ["web", "migrate", "db"])
        await catalog.add_flow_version(tx, PROJECT, PIPELINE, STAGE, FLOW, "bench", start)
        flow = await catalog.get_flow(tx, PROJECT, PIPELINE, STAGE)
        assert flow is not None
    ids = [str(uuid.uuid4()) for _ in range(runs)]
    run_rows: list[tuple[Any, ...]] = []
    node_rows: list[tuple[Any, ...]] = []
    for index, run_id in enumerate(ids):
        created = to_epoch(start + timedelta(hours=index))
        run_rows.append(
            (
                run_id, flow.id, 1, index + 1, "release", "bench", "success", "{}", "{}", "{}",
                dump_json(FLOW), created, created, created + 600, created + 600,
            )
        )  # fmt: skip
        for position, (kind, ref, code, data) in enumerate(NODES):
            began = created + 60 * position
            answer = {
                key: value.format(n=index) if isinstance(value, str) else value for key, value in data.items()
            }
            node_rows.append(
                (
                    str(uuid.uuid4()), run_id, f"0.{position}", "0", kind, ref, "success", 1, 3,
                    began, began + 30, dump_json({"kind": kind, "ref": ref, **code}), dump_json(answer),
                )
            )  # fmt: skip
    async with db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO runs (id, flow_id, flow_version, seq, kind, triggered_by, status, arguments,"
            " overrides, release_node_overrides, document, created_at, started_at, concluded_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            run_rows,
        )
        await tx.executemany(
            "INSERT INTO node_runs (id, run_id, path, parent_path, kind, ref, status, attempt, max_attempts,"
            " started_at, ended_at, code, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            node_rows,
        )
    return ids


async def bench(runs: int, repeat: int) -> list[tuple[str, float, float]]:
    with tempfile.TemporaryDirectory(prefix="releaseflow-records-bench-") as directory:
        db = await open_database(f"sqlite://{Path(directory) / 'bench.db'}")
        try:
            await migrate(db)
            ids = await seed(db, runs)
            deep = await records_page(db, PROJECT, RecordFilter(), limit=runs * len(NODES) // 2)
            reads = {
                "first page": lambda: records_page(db, PROJECT, RecordFilter()),
                "a page half-way": lambda: records_page(db, PROJECT, RecordFilter(), cursor=deep.next_cursor),
                "first page of builds": lambda: records_page(
                    db, PROJECT, RecordFilter(kinds=[RecordKind.BUILD])
                ),
                "first page of one resource": lambda: records_page(
                    db, PROJECT, RecordFilter(resource_id="web")
                ),
                "one run's": lambda: records_page(db, PROJECT, RecordFilter(run_id=ids[runs // 2])),
                "the project whole": lambda: project_detail(db, PROJECT),
            }
            return [(name, *await timed(repeat, read)) for name, read in reads.items()]
        finally:
            await db.close()


def main() -> None:
    report(
        "python -m tests.benchmarks.records_bench",
        [1_000, 10_000],
        bench,
        column="runs (records)",
        label=lambda runs: f"{runs:,} ({runs * len(NODES):,})",
    )


if __name__ == "__main__":
    main()

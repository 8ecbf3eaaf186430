"""Records of what runs made (engine/platform_records.py) and the project view built on them, on
SQLite and PostgreSQL with the fake driver: backups and failures, what has no log and why, a resumed
run's carried-over nodes, and lookups from another project."""

from __future__ import annotations

import re
from typing import Any

import pytest
from tests.integration.support import PIPELINE, PROJECT, EngineHarness, fast, template, workflow

from releaseflow.domain.errors import NotFoundError, ValidationError
from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.engine import platform_records, projects
from releaseflow.engine.commands import RunRequest
from releaseflow.engine.platform_records import PlatformRecord, RecordFilter, RecordKind
from releaseflow.testing import Fail, Succeed

BACKUP = {"kind": "AddonBackup", "ref": "backup", "spec": {"addonId": "db", "backupType": "dump"}}
JOB_DEPLOY = {
    "kind": "Release",
    "ref": "ship",
    "spec": {
        "type": "build",
        "origin": {"id": "builder", "branch": "main", "build": "b1"},
        "target": {"id": "migrate", "type": "job"},
    },
}
JOB = fast({"kind": "JobRun", "ref": "migrate", "spec": {"jobId": "migrate"}}, attempts=1)


async def records(harness: EngineHarness, project: str = PROJECT, **wanted: Any) -> list[PlatformRecord]:
    return (
        await platform_records.records_page(harness.db, project, RecordFilter(**wanted), limit=100)
    ).records


async def failed_then_resumed(harness: EngineHarness) -> tuple[str, str]:
    """A run whose backup and deploy succeed and whose job fails, and its resume (the job succeeds)."""
    await harness.seed(template(workflow(BACKUP, JOB_DEPLOY, JOB)))
    harness.start_worker()
    harness.driver.script("db", Succeed({"id": "bk1", "size": 10}))
    harness.driver.script(
        "migrate", Succeed({"artifact": {"kind": "build", "buildId": "b1"}}), Fail("exit 3")
    )
    failed = await harness.start()
    assert (await harness.run(failed.id)).status is RunStatus.FAILED
    harness.driver.script("migrate", Succeed({"id": "jr-2", "exitCode": 0}))
    resumed = await harness.engine.resume_run(failed.id, RunRequest())
    assert (await harness.run(resumed.id)).status is RunStatus.SUCCESS
    return failed.id, resumed.id


async def test_records__what_each_node_made_newest_first_and_carried_nodes_once(
    harness: EngineHarness,
) -> None:
    failed, resumed = await failed_then_resumed(harness)
    found = await records(harness)

    seen = [(record.run_id, record.kind, record.status) for record in found]
    assert seen == [
        (resumed, RecordKind.JOB_RUN, NodeStatus.SUCCESS),
        (failed, RecordKind.JOB_RUN, NodeStatus.FAILED),
        (failed, RecordKind.DEPLOY, NodeStatus.SUCCESS),
        (failed, RecordKind.BACKUP, NodeStatus.SUCCESS),
    ]  # the resume's carried backup and deploy did not act again: they are not records of it
    job, failed_job, ship, backup = found
    assert (backup.resource_id, backup.resource_kind, backup.platform_id) == ("db", "addon", "bk1")
    assert (ship.resource_id, ship.resource_kind) == ("migrate", "job")
    assert failed_job.platform_id is None and failed_job.error and "exit 3" in failed_job.error
    assert job.platform_id == "jr-2"

    narrowed = await records(harness, kinds=[RecordKind.BACKUP])
    assert [record.id for record in narrowed] == [backup.id]
    by_job = await records(harness, resource_id="migrate")
    assert [record.id for record in by_job] == [job.id, failed_job.id, ship.id]
    of_run = await records(harness, pipeline_id=PIPELINE, stage="development", run_id=resumed)
    assert [record.id for record in of_run] == [job.id]
    assert await records(harness, stage="Staging", pipeline_id=PIPELINE) == []


async def test_records__paged_by_key_with_the_resource_checked_exactly(harness: EngineHarness) -> None:
    await failed_then_resumed(harness)
    every = await records(harness)
    pages, cursor = [], None
    while True:
        page = await platform_records.records_page(
            harness.db, PROJECT, RecordFilter(), cursor=cursor, limit=1
        )
        pages.append([record.id for record in page.records])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == [[record.id] for record in every]
    # The job's page skips the records that only mention it elsewhere (none here) and ends exactly.
    first = await platform_records.records_page(
        harness.db, PROJECT, RecordFilter(resource_id="migrate"), limit=2
    )
    rest = await platform_records.records_page(
        harness.db, PROJECT, RecordFilter(resource_id="migrate"), cursor=first.next_cursor, limit=2
    )
    assert [record.id for record in first.records + rest.records] == [r.id for r in every[:3]]
    assert rest.next_cursor is None
    with pytest.raises(ValidationError, match="not a cursor this server gave"):
        await platform_records.records_page(harness.db, PROJECT, RecordFilter(), cursor="yesterday")


async def test_records__have_logs_only_where_a_driver_keeps_one(harness: EngineHarness) -> None:
    await failed_then_resumed(harness)
    job, failed_job, ship, backup = await records(harness)
    drivers = harness.worker.drivers

    async def refusal(record: platform_records.PlatformRecord) -> str:
        with pytest.raises(NotFoundError) as refused:
            await platform_records.record_log(harness.db, drivers, record, lines=10)
        return str(refused.value)

    assert "drivers keep none of backups" in await refusal(backup)
    assert "a deploy to a job runs nothing" in await refusal(ship)
    assert "the platform never answered it (exit 3)" in await refusal(failed_job)
    assert "the fake driver keeps no logs" in await refusal(job)


async def test_records__looked_up_in_their_project_only(harness: EngineHarness) -> None:
    _, resumed = await failed_then_resumed(harness)
    job = (await records(harness, run_id=resumed))[0]
    assert (await platform_records.record_in_project(harness.db, PROJECT, job.id)) == job
    # The root workflow: a node of the run, but no record.
    root = next(node for node in (await harness.nodes(resumed)).values() if node.parent_path is None)
    for project, key in (("elsewhere", job.id), (PROJECT, "no-such-id"), (PROJECT, root.id)):
        with pytest.raises(NotFoundError, match=f"no build, job run, deploy or backup record '{key}'"):
            await platform_records.record_in_project(harness.db, project, key)
    for filters, words in (
        ({"resource_id": "ghost"}, "no resource 'ghost'"),
        ({"pipeline_id": "nope"}, "no pipeline 'nope'"),
        ({"pipeline_id": PIPELINE, "stage": "qa"}, "no stage 'qa'"),
    ):
        with pytest.raises(NotFoundError, match=words):
            await records(harness, **filters)
    with pytest.raises(NotFoundError, match="no project 'elsewhere'"):
        await records(harness, "elsewhere")


async def test_record_of_node__the_record_of_the_run_that_acted_at_that_path(harness: EngineHarness) -> None:
    failed, resumed = await failed_then_resumed(harness)
    job, failed_job, _, backup = await records(harness)

    # The resume's backup was carried over from the failed run, which made it: its record is there.
    assert await platform_records.record_of_node(harness.db, PROJECT, failed, backup.node_path) == backup
    assert await platform_records.record_of_node(harness.db, PROJECT, resumed, job.node_path) == job
    assert await platform_records.record_of_node(harness.db, PROJECT, failed, job.node_path) == failed_job
    for project, run_id, path in (("elsewhere", resumed, job.node_path), (PROJECT, resumed, "spec")):
        with pytest.raises(NotFoundError, match=re.escape(f"record of node '{path}' of run {run_id}")):
            await platform_records.record_of_node(harness.db, project, run_id, path)


async def test_project_detail__each_resource_with_its_stage_latest_record_and_release(
    harness: EngineHarness,
) -> None:
    await failed_then_resumed(harness)
    detail = await projects.project_detail(harness.db, PROJECT)
    resources = {view.id: view for view in detail.resources}
    db, migrate, web = resources["db"], resources["migrate"], resources["web"]
    assert (db.stage, db.latest and db.latest.kind, db.release) == ("Development", RecordKind.BACKUP, None)
    assert migrate.latest is not None and migrate.latest.status is NodeStatus.SUCCESS
    assert migrate.release is not None and migrate.release.artifact["buildId"] == "b1"
    assert (web.latest, web.release, web.pipeline_id) == (None, None, PIPELINE)
    assert resources["builder"].stage is None
    assert [pipeline.summary.id for pipeline in detail.pipelines] == [PIPELINE]
    assert [view.id for view in await projects.list_projects(harness.db)] == [PROJECT]
    assert await projects.list_projects(harness.db, "elsewhere") == []
    with pytest.raises(NotFoundError, match="no project 'elsewhere'"):
        await projects.project_detail(harness.db, "elsewhere")

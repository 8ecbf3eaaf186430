"""The read model (``releaseflow.engine.queries``) over real runs, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from tests.integration.support import (
    PIPELINE,
    PROJECT,
    EngineHarness,
    deploy,
    fast,
    job_run,
    template,
    wait_for_node,
    workflow,
)

from releaseflow.domain.errors import ConflictError, NotFoundError
from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.engine import queries
from releaseflow.testing import Fail
from releaseflow.wire import runs as wire


def approval(ref: str) -> dict[str, object]:
    return {"kind": "Approval", "ref": ref, "spec": {"amount": 1}}


async def test_run_detail__follows_the_template_tree_with_northflank_responses(
    harness: EngineHarness,
) -> None:
    await harness.seed(
        template(workflow(job_run("migrate"), workflow(deploy("api"), deploy("web", "web"), kind="parallel")))
    )
    run = await harness.start(name="first")
    harness.start_worker()
    await harness.run(run.id)

    detail = await queries.run_detail(harness.db, run.id)

    assert detail.run.status is RunStatus.SUCCESS
    assert detail.run.display_name == "first"
    assert (detail.run.project_id, detail.run.pipeline_id, detail.run.stage) == (
        PROJECT,
        PIPELINE,
        "Development",
    )
    assert detail.root is not None
    assert [node.path for node in detail.root.walk()] == [
        "spec",
        "spec.spec.steps[0]",
        "spec.spec.steps[1]",
        "spec.spec.steps[1].spec.steps[0]",
        "spec.spec.steps[1].spec.steps[1]",
    ]
    assert detail.root.children[1].workflow_type == "parallel"
    assert (detail.progress.done, detail.progress.total) == (3, 3)
    migrate = detail.node("migrate")
    assert migrate is not None and migrate.code_resolved
    response = wire.response(migrate)
    assert response is not None
    assert response["status"] == "success"
    assert response["retries"]["attempts"] == 1
    assert response["retries"]["maxAttempts"] == 3
    assert isinstance(response["startTime"], int) and isinstance(response["endTime"], int)
    assert response["startTime"] <= response["endTime"]
    assert "error" not in response
    document = wire.run_detail(detail)
    assert document["spec"]["steps"][1]["steps"][0]["ref"] == "api"
    assert document["progress"] == {"done": 3, "total": 3}
    assert any(event["ref"] == "migrate" and event["to"] == "success" for event in document["events"])


async def test_run_detail__workflow_in_progress_shows_the_roll_up_of_its_children(
    harness: EngineHarness,
) -> None:
    await harness.seed(
        template(workflow(workflow(job_run("quick"), approval("gate"), kind="parallel"), deploy("later")))
    )
    run = await harness.start()
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "gate", "waiting")
    await wait_for_node(harness.db, run.id, "quick", "success")

    detail = await queries.run_detail(harness.db, run.id)

    assert detail.root is not None
    # Stored as "running"; shown as the most severe status inside: the wait for approval.
    assert detail.root.status is NodeStatus.WAITING
    assert detail.root.children[0].status is NodeStatus.WAITING
    gate = detail.node("gate")
    later = detail.node("later")
    assert gate is not None and later is not None
    assert wire.response(gate) == {**(wire.response(gate) or {}), "status": "approval_wait"}
    assert later.status is NodeStatus.PENDING
    assert wire.response(later) is None
    assert later.code_resolved is False
    assert (detail.progress.done, detail.progress.total) == (1, 3)


async def test_run_detail__failed_and_retrying_nodes_carry_error_and_next_attempt(
    harness: EngineHarness,
) -> None:
    harness.driver.script("migrate", Fail("disk full", retryable=True))
    await harness.seed(template(workflow(fast(job_run("migration"), attempts=3, delay=60), kind="parallel")))
    run = await harness.start()
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "migration", "retrying")

    detail = await queries.run_detail(harness.db, run.id)

    node = detail.node("migration")
    assert node is not None and node.next_attempt is not None
    response = wire.response(node)
    assert response is not None
    assert response["status"] == "retrying"
    assert response["error"] == {"code": 500, "message": "disk full"}
    assert response["retries"]["nextAttempt"] == int(node.next_attempt.timestamp())
    assert detail.root is not None and detail.root.status is NodeStatus.RETRYING


async def test_run_detail__a_run_failed_by_its_dry_run_has_no_tree(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(job_run("migrate", job="${args.missing}"))))
    run = await harness.start()

    detail = await queries.run_detail(harness.db, run.id)

    assert detail.run.status is RunStatus.FAILED
    assert detail.root is None
    assert (detail.progress.done, detail.progress.total) == (0, 0)
    assert detail.run.error is not None and "missing" in detail.run.error


async def test_list_runs__newest_first_with_filters(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(approval("gate"))))
    first = await harness.start(name="one")
    second = await harness.start()
    await harness.engine.abort_run(first.id)

    everything = await queries.list_runs(harness.db, PROJECT, PIPELINE, "Development")
    aborted = await queries.list_runs(harness.db, PROJECT, PIPELINE, "Development", statuses=["aborted"])
    rollbacks = await queries.list_runs(harness.db, PROJECT, PIPELINE, "Development", kind="rollback")

    assert [run.id for run in everything] == [second.id, first.id]
    assert everything[0].display_name == second.id  # unnamed runs show their UUID
    assert everything[1].display_name == "one"
    assert everything[1].kind == "release"
    assert [run.id for run in aborted] == [first.id]
    assert rollbacks == []
    assert (await queries.list_runs(harness.db, PROJECT, PIPELINE, "Development", limit=1))[0].id == second.id


async def test_resolve_run_id__accepts_unique_prefixes_only(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(approval("gate"))))
    # 17 runs: by the pigeonhole principle two of them share their first hex digit.
    ids = [(await harness.start()).id for _ in range(17)]
    shared = next(char for char, count in Counter(run_id[0] for run_id in ids).items() if count > 1)

    assert await queries.resolve_run_id(harness.db, ids[0]) == ids[0]
    assert await queries.resolve_run_id(harness.db, ids[3][:13].upper()) == ids[3]
    with pytest.raises(ConflictError, match="several run ids"):
        await queries.resolve_run_id(harness.db, shared)
    with pytest.raises(NotFoundError):
        await queries.resolve_run_id(harness.db, "zzzz")


async def test_resolve_stage__ignores_case_and_names_the_choices(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(approval("gate"))))

    assert await queries.resolve_project(harness.db, None) == PROJECT
    assert await queries.resolve_stage(harness.db, PROJECT, PIPELINE, "development") == "Development"
    with pytest.raises(NotFoundError, match="Development, Staging, Production"):
        await queries.resolve_stage(harness.db, PROJECT, PIPELINE, "qa")
    with pytest.raises(NotFoundError, match="no pipeline 'nope'"):
        await queries.resolve_stage(harness.db, PROJECT, "nope", "Development")
    with pytest.raises(NotFoundError, match="no project 'other'"):
        await queries.resolve_project(harness.db, "other")


async def test_workers_seen_since__lists_a_running_worker_with_its_pid(harness: EngineHarness) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    harness.start_worker()

    seen = await wait_for(lambda: queries.workers_seen_since(harness.db, started))

    assert [(worker.id, worker.pid) for worker in seen] == [(harness.worker.id, os.getpid())]
    assert await queries.workers_seen_since(harness.db, datetime.now(UTC) + timedelta(hours=1)) == []


async def wait_for(probe: Callable[[], Awaitable[list[queries.WorkerView]]]) -> list[queries.WorkerView]:
    for _ in range(100):
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("no worker registered within 5s")

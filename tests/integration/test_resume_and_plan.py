"""Resume a failed run from its failed node; plan a run before starting it, and keep the plan."""

from __future__ import annotations

import pytest
from tests.integration.support import PIPELINE, PROJECT, EngineHarness, deploy, job_run, template, workflow

from releaseflow.domain.errors import ConflictError, NotFoundError
from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.engine import queries
from releaseflow.engine.commands import RunRequest
from releaseflow.engine.plan import plan_run, stored_plan
from releaseflow.platform.driver import Artifact
from releaseflow.testing import Fail, Succeed

V1 = Artifact(kind="build", build_service="builder", build_id="bld-1", commit="c0ffee1", branch="main")
V2 = Artifact(kind="build", build_service="builder", build_id="bld-2", commit="c0ffee2", branch="main")


def flaky_flow() -> dict[str, object]:
    # deploy api, then a migration that fails for good the first time, then deploy web.
    return template(
        workflow(
            deploy("deploy-api"),
            {**job_run("migrate"), "settings": {"maxAttempts": 1}},
            deploy("deploy-web", service="web"),
        ),
        arguments={"level": "1"},
    )


async def failed_run(harness: EngineHarness) -> str:
    harness.driver.script("api", Succeed({"artifact": V1.to_data()}))
    harness.driver.script("migrate", Fail("migration broke", retryable=False), Succeed({"exitCode": 0}))
    harness.driver.script("web", Succeed({"artifact": V1.to_data()}))
    await harness.seed(flaky_flow())
    run = await harness.start()
    harness.start_worker()
    assert (await harness.run(run.id)).status is RunStatus.FAILED
    return run.id


async def test_resume__keeps_what_succeeded_and_runs_the_failed_node_and_what_follows(
    harness: EngineHarness,
) -> None:
    failed = await failed_run(harness)
    assert [call.resource.id for call in harness.driver.calls] == ["api", "migrate"]

    resumed = await harness.engine.resume_run(failed, RunRequest(arguments={"level": "2"}))
    done = await harness.run(resumed.id)

    assert done.status is RunStatus.SUCCESS, done.error
    assert done.resumed_from == failed
    assert done.arguments["level"] == "2"
    # api was deployed once, by the failed run: carried over, never asked again.
    assert [call.resource.id for call in harness.driver.calls] == ["api", "migrate", "migrate", "web"]
    nodes = await harness.nodes(resumed.id)
    old = await harness.nodes(failed)
    assert nodes["deploy-api"].carried_from == failed
    assert nodes["deploy-api"].data == old["deploy-api"].data
    assert nodes["deploy-api"].attempts == old["deploy-api"].attempts
    assert nodes["migrate"].carried_from is None and nodes["migrate"].status is NodeStatus.SUCCESS
    detail = await queries.run_detail(harness.db, resumed.id)
    assert detail.run.resumed_from == failed
    carried = [event for event in detail.events if event.node_path and "carried over" in event.cause]
    assert [event.ref for event in carried] == ["deploy-api"]
    plan = await stored_plan(harness.db, resumed.id)
    assert plan["carriedOver"] == [old["deploy-api"].path]


async def test_resume__refuses_a_run_that_did_not_fail(harness: EngineHarness) -> None:
    harness.driver.script("api", Succeed({"artifact": V1.to_data()}))
    await harness.seed(template(workflow(deploy("deploy-api"))))
    run = await harness.start()
    harness.start_worker()
    await harness.run(run.id)

    with pytest.raises(ConflictError, match="is success, not failed: only a failed run can be resumed"):
        await harness.engine.resume_run(run.id, RunRequest())
    with pytest.raises(NotFoundError):
        await harness.engine.resume_run("no-such-run", RunRequest())


async def test_resume__a_second_resume_of_one_failed_run_is_refused(harness: EngineHarness) -> None:
    failed = await failed_run(harness)
    first = await harness.engine.resume_run(failed, RunRequest())
    await harness.run(first.id)

    with pytest.raises(ConflictError, match=f"already resumed by run {first.id} \\(success\\)"):
        await harness.engine.resume_run(failed, RunRequest())


async def test_plan__shows_the_tree_the_queue_and_what_each_deploy_replaces(harness: EngineHarness) -> None:
    harness.driver.script("api", Succeed({"artifact": V1.to_data()}))
    document = template(
        workflow(deploy("deploy-api"), job_run("migrate")), options={"concurrencyPolicy": "queue"}
    )
    await harness.seed(document)
    first = await harness.start()
    harness.start_worker()
    await harness.run(first.id)
    await harness.stop_worker()
    blocking = await harness.start()  # no worker: it stays running and holds the slot

    overrides = {"deploy-api": {"origin": {"id": "builder", "build": "bld-2"}}}
    request = RunRequest(overrides=overrides)
    plan = await plan_run(
        harness.db, PROJECT, PIPELINE, "Development", request, now=harness.engine.clock.now()
    )

    assert plan["admission"]["action"] == "queue"
    assert plan["admission"]["position"] == 1 and plan["admission"]["ahead"] == [blocking.id]
    assert [(node["kind"], node["ref"], node["depth"]) for node in plan["nodes"]] == [
        ("Workflow", None, 0),
        ("Release", "deploy-api", 1),
        ("JobRun", "migrate", 1),
    ]
    (release,) = plan["releases"]
    assert release["target"] == "api" and release["replaces"] == V1.to_data()
    assert release["deploys"] == {"kind": "build", "buildService": "builder", "buildId": "bld-2"}
    async with harness.db.read() as tx:
        runs = await tx.fetchvalue("SELECT COUNT(*) FROM runs")
    assert runs == 2  # planning started nothing

    queued = await harness.start()
    assert queued.status is RunStatus.QUEUED
    kept = await stored_plan(harness.db, queued.id)
    assert kept["admission"]["ahead"] == [blocking.id]
    assert kept["releases"][0]["replaces"] == V1.to_data()

"""Release state: successful deploys are recorded, and promote deploys what the origin runs."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.integration.support import PIPELINE, PROJECT, EngineHarness, deploy, template, workflow

from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.engine import queries
from releaseflow.platform.driver import Artifact, Operation
from releaseflow.store import catalog, release_state
from releaseflow.testing import Fail, Succeed

BUILT = Artifact(kind="build", build_service="builder", build_id="bld-1", commit="c0ffee", branch="main")


def promote(ref: str, origin: str, target: str) -> dict[str, object]:
    return {
        "kind": "Release",
        "ref": ref,
        "spec": {
            "type": "deployment",
            "origin": {"id": origin, "type": "service"},
            "target": {"id": target, "type": "service"},
        },
    }


async def test_release_state__a_successful_deploy_is_recorded_with_its_run(harness: EngineHarness) -> None:
    harness.driver.script("api", Succeed({"artifact": BUILT.to_data(), "deploymentId": "dep-1"}))
    await harness.seed(template(workflow(deploy("release"))))
    run = await harness.start()
    harness.start_worker()
    assert (await harness.run(run.id)).status is RunStatus.SUCCESS
    async with harness.db.read() as tx:
        rows = await release_state.stage_state(tx, PROJECT, PIPELINE, "Development")
        current = await release_state.current_artifacts(tx, PROJECT)
    assert [(row["resource_id"], row["run_id"], row["node_path"]) for row in rows] == [
        ("api", run.id, "spec.spec.steps[0]")
    ]
    assert current == {"api": BUILT.to_data()}
    views = await queries.release_state(harness.db, PROJECT, PIPELINE, None)
    assert [(view.stage, view.resource_id, view.run_id) for view in views] == [("Development", "api", run.id)]
    history = await queries.release_state(harness.db, PROJECT, PIPELINE, "Development", history=True)
    assert [view.artifact for view in history] == [BUILT.to_data()]


async def test_release_state__a_failed_deploy_changes_nothing(harness: EngineHarness) -> None:
    harness.driver.script("api", Fail("unhealthy", retryable=False))
    await harness.seed(template(workflow(deploy("release"))))
    run = await harness.start()
    harness.start_worker()
    assert (await harness.run(run.id)).status is RunStatus.FAILED
    async with harness.db.read() as tx:
        assert await release_state.current_artifacts(tx, PROJECT) == {}


async def test_release_state__promote_deploys_what_the_origin_runs(harness: EngineHarness) -> None:
    harness.driver.script("api", Succeed({"artifact": BUILT.to_data()}))
    await harness.seed(template(workflow(deploy("release"))))
    first = await harness.start()
    harness.start_worker()
    await harness.run(first.id)
    await harness.stop_worker()

    async with harness.db.transaction() as tx:
        await catalog.add_flow_version(
            tx,
            PROJECT,
            PIPELINE,
            "Staging",
            template(workflow(promote("promote", "api", "api-staging"))),
            "test",
            datetime.now(UTC),
        )
    harness.driver.script("api-staging", Succeed({"artifact": BUILT.to_data()}))
    second = await harness.start(stage="Staging")
    harness.start_worker()
    assert (await harness.run(second.id)).status is RunStatus.SUCCESS
    call = harness.driver.calls_on("api-staging")[0]
    assert call.operation is Operation.DEPLOY_ARTIFACT
    assert call.artifact == BUILT
    async with harness.db.read() as tx:
        staged = await release_state.stage_state(tx, PROJECT, PIPELINE, "Staging")
    assert [(row["resource_id"], row["artifact"]) for row in staged] == [("api-staging", BUILT.to_data())]


async def test_release_state__promote_of_an_origin_with_no_release_fails_clearly(
    harness: EngineHarness,
) -> None:
    await harness.seed(template(workflow(promote("promote", "api", "api-staging"))), stage="Staging")
    run = await harness.start(stage="Staging")
    harness.start_worker()
    assert (await harness.run(run.id)).status is RunStatus.FAILED
    node = (await harness.nodes(run.id))["promote"]
    assert node.status is NodeStatus.FAILED and node.attempt == 1
    assert node.error is not None and "service 'api' has no release recorded yet" in node.error["message"]
    assert harness.driver.calls == []

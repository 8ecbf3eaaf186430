"""Sequential, parallel, failure, retry, waiting, skip and reference semantics of the engine."""

from __future__ import annotations

from tests.integration.support import (
    EngineHarness,
    deploy,
    fast,
    job_run,
    template,
    wait_for_node,
    workflow,
)

from releaseflow.domain.progress import SKIPPED_BY_FAILURE, SKIPPED_BY_REQUEST
from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.testing import Fail, InProgress, Succeed


def approval(ref: str) -> dict[str, object]:
    return {"kind": "Approval", "ref": ref, "spec": {"amount": 1}}


async def test_engine__sequential_runs_steps_in_order(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(job_run("first"), deploy("second"), job_run("third"))))
    run = await harness.start()
    harness.start_worker()
    done = await harness.run(run.id)

    assert done.status is RunStatus.SUCCESS
    leaf_events = [(path, to) for path, _, to in await harness.events(run.id) if path and "steps[" in path]
    starts = [path for path, to in leaf_events if to == "running"]
    assert starts == ["spec.spec.steps[0]", "spec.spec.steps[1]", "spec.spec.steps[2]"]
    # Each step starts only after the one before it succeeded.
    assert leaf_events.index(("spec.spec.steps[0]", "success")) < leaf_events.index(
        ("spec.spec.steps[1]", "running")
    )
    assert leaf_events.index(("spec.spec.steps[1]", "success")) < leaf_events.index(
        ("spec.spec.steps[2]", "running")
    )
    assert [call.resource.id for call in harness.driver.calls] == ["migrate", "api", "migrate"]


async def test_engine__parallel_starts_every_step(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(approval("a"), approval("b"), kind="parallel")))
    run = await harness.start()
    harness.start_worker()
    # Both wait at once: neither had to finish for the other to start.
    await wait_for_node(harness.db, run.id, "a", "waiting")
    await wait_for_node(harness.db, run.id, "b", "waiting")
    nodes = await harness.nodes(run.id)
    assert nodes["spec"].status is NodeStatus.RUNNING
    await harness.engine.approve(run.id, "a", "alice")
    await harness.engine.approve(run.id, "b", "bob")
    done = await harness.run(run.id)
    assert done.status is RunStatus.SUCCESS
    data = (await harness.nodes(run.id))["b"].data
    assert (data["required"], data["approvals"]) == (1, ["bob"])


async def test_engine__failure_skips_later_steps_visibly(harness: EngineHarness) -> None:
    harness.driver.script("migrate", Fail("migration exploded", retryable=False))
    await harness.seed(template(workflow(job_run("migration"), deploy("release"))))
    run = await harness.start()
    harness.start_worker()
    done = await harness.run(run.id)

    nodes = await harness.nodes(run.id)
    assert done.status is RunStatus.FAILED
    assert nodes["migration"].status is NodeStatus.FAILED
    assert nodes["migration"].error == {"code": 500, "message": "migration exploded"}
    assert nodes["release"].status is NodeStatus.SKIPPED
    assert nodes["release"].cause == SKIPPED_BY_FAILURE
    assert nodes["spec"].status is NodeStatus.FAILED
    assert harness.driver.calls_on("api") == []


async def test_engine__failure_lets_running_siblings_finish_before_the_run_fails(
    harness: EngineHarness,
) -> None:
    harness.driver.script("migrate", Fail("no", retryable=False))
    await harness.seed(
        template(workflow(workflow(job_run("breaks"), deploy("never")), approval("gate"), kind="parallel"))
    )
    run = await harness.start()
    harness.start_worker()
    await wait_for_node(harness.db, run.id, "breaks", "failed")
    await wait_for_node(harness.db, run.id, "gate", "waiting")
    # The approval is still in flight: the run has not ended yet.
    assert (await harness.nodes(run.id))["never"].status is NodeStatus.SKIPPED
    assert (await harness.run_status(run.id)) is RunStatus.RUNNING
    await harness.engine.approve(run.id, "gate", "carol")
    done = await harness.run(run.id)
    assert done.status is RunStatus.FAILED
    assert (await harness.nodes(run.id))["gate"].status is NodeStatus.SUCCESS


async def test_engine__retries_until_an_attempt_succeeds(harness: EngineHarness) -> None:
    harness.driver.script("migrate", Fail("flaky"), Fail("flaky again"), Succeed({"exitCode": 0}))
    await harness.seed(template(workflow(fast(job_run("migration")))))
    run = await harness.start()
    harness.start_worker()
    done = await harness.run(run.id)

    node = (await harness.nodes(run.id))["migration"]
    assert done.status is RunStatus.SUCCESS
    assert node.attempt == 3
    assert [entry["status"] for entry in node.attempts] == ["failed", "failed", "success"]
    assert node.attempts[0]["error"]["message"] == "flaky"
    statuses = [to for path, _, to in await harness.events(run.id) if path == "spec.spec.steps[0]"]
    assert statuses == ["running", "retrying", "running", "retrying", "running", "success"]
    keys = [call.idempotency_key for call in harness.driver.calls]
    assert keys == [f"{run.id}/spec.spec.steps[0]/{attempt}" for attempt in (1, 2, 3)]


async def test_engine__gives_up_after_max_attempts(harness: EngineHarness) -> None:
    harness.driver.script("migrate", Fail("always"))
    await harness.seed(template(workflow(fast(job_run("migration"), attempts=2))))
    run = await harness.start()
    harness.start_worker()
    done = await harness.run(run.id)
    node = (await harness.nodes(run.id))["migration"]
    assert done.status is RunStatus.FAILED
    assert (node.attempt, node.max_attempts, len(harness.driver.calls)) == (2, 2, 2)
    assert node.cause is not None and "attempt 2 of 2" in node.cause


async def test_engine__waits_for_completion_then_succeeds(harness: EngineHarness) -> None:
    harness.driver.script("api", InProgress(polls=1, data={"deploymentId": "d-1"}))
    await harness.seed(template(workflow(deploy("release", condition="running", timeoutDuration=60))))
    run = await harness.start()
    harness.start_worker()
    waiting = await wait_for_node(harness.db, run.id, "release", "waiting")
    assert waiting.data == {"deploymentId": "d-1"}
    assert waiting.wait_deadline is not None
    done = await harness.run(run.id)
    assert done.status is RunStatus.SUCCESS
    assert len(harness.driver.follows) == 1


async def test_engine__waiting_past_its_timeout_fails(harness: EngineHarness) -> None:
    harness.driver.script("api", InProgress(polls=1000))
    condition = {
        "kind": "Condition",
        "ref": "up",
        "spec": {
            "kind": "Service",
            "spec": {"type": "running", "data": {"serviceId": "api", "timeoutDuration": 1}},
        },
        "settings": {"maxAttempts": 1},
    }
    await harness.seed(template(workflow(condition)))
    run = await harness.start()
    harness.start_worker()
    done = await harness.run(run.id)
    node = (await harness.nodes(run.id))["up"]
    assert done.status is RunStatus.FAILED
    assert node.error is not None and node.error["message"].startswith("timed out")
    assert [to for path, _, to in await harness.events(run.id) if path == "spec.spec.steps[0]"] == [
        "running",
        "waiting",
        "failed",
    ]


async def test_engine__skip_node_execution_from_an_argument(harness: EngineHarness) -> None:
    await harness.seed(
        template(
            workflow(job_run("migration", skipNodeExecution="${args.skipMigration}"), deploy("release")),
            arguments={"skipMigration": "false"},
        )
    )
    run = await harness.start(arguments={"skipMigration": "true"})
    harness.start_worker()
    done = await harness.run(run.id)
    nodes = await harness.nodes(run.id)
    assert done.status is RunStatus.SUCCESS
    assert nodes["migration"].status is NodeStatus.SKIPPED
    assert nodes["migration"].cause == SKIPPED_BY_REQUEST
    assert nodes["release"].status is NodeStatus.SUCCESS
    assert [call.resource.id for call in harness.driver.calls] == ["api"]


async def test_engine__refs_resolve_to_earlier_outputs(harness: EngineHarness) -> None:
    harness.driver.script("builder", Succeed({"id": "build-42", "sha": "abc123", "branch": "main"}))
    build = {"kind": "Build", "ref": "build", "spec": {"id": "builder", "type": "service", "branch": "main"}}
    release = deploy("release")
    release["spec"]["origin"] = {
        "id": "builder",
        "branch": "${refs.build.branch}",
        "build": "${refs.build.id}",
    }
    await harness.seed(template(workflow(build, release)))
    run = await harness.start()
    harness.start_worker()
    done = await harness.run(run.id)
    assert done.status is RunStatus.SUCCESS
    deploy_call = harness.driver.calls_on("api")[0]
    assert dict(deploy_call.params) == {"id": "builder", "branch": "main", "build": "build-42"}
    code = (await harness.nodes(run.id))["release"].code
    assert code["spec"]["origin"]["build"] == "build-42"


async def test_engine__dry_run_failure_touches_nothing(harness: EngineHarness) -> None:
    release = deploy("release")
    release["spec"]["origin"]["branch"] = "${args.branch}"
    await harness.seed(template(workflow(job_run("migration"), release)))
    run = await harness.start()
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert "spec.spec.steps[1].spec.origin.branch" in run.error
    assert "branch" in run.error
    harness.start_worker()
    assert await harness.nodes(run.id) == {}
    assert harness.driver.calls == []


async def test_engine__release_node_overrides_replace_the_release_spec(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(deploy("release"))))
    run = await harness.start(
        release_node_overrides={
            "api": {"type": "build", "origin": {"id": "builder", "branch": "hotfix", "build": "b-7"}}
        },
    )
    harness.start_worker()
    assert (await harness.run(run.id)).status is RunStatus.SUCCESS
    call = harness.driver.calls_on("api")[0]
    assert call.params["branch"] == "hotfix" and call.params["build"] == "b-7"


async def test_engine__a_nul_in_a_platform_answer_still_fails_the_node(harness: EngineHarness) -> None:
    # PostgreSQL's text columns refuse NUL; the failure must still be recorded, not leave the run running.
    harness.driver.script("migrate", Fail("exploded\x00here", retryable=False))
    await harness.seed(template(workflow(job_run("migration"))))
    run = await harness.start()
    harness.start_worker()
    done = await harness.run(run.id)

    nodes = await harness.nodes(run.id)
    assert done.status is RunStatus.FAILED
    assert nodes["migration"].status is NodeStatus.FAILED
    assert nodes["migration"].error == {"code": 500, "message": "exploded\x00here"}
    assert "exploded\\x00here" in (nodes["migration"].cause or "")

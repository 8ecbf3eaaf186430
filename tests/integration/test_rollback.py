"""Rollback, pins and the runs list through the engine, on SQLite and PostgreSQL (fake driver)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.integration.support import PIPELINE, PROJECT, EngineHarness, template, workflow

from releaseflow.domain.errors import ConflictError, NotFoundError
from releaseflow.domain.run_origin import OriginKind, RunOrigin
from releaseflow.domain.statuses import RunStatus
from releaseflow.engine import history as run_history
from releaseflow.engine import queries
from releaseflow.engine.history import rollback_outcome, rollbacks_of
from releaseflow.engine.pins import PinnedError, pin_stage, unpin_stage
from releaseflow.engine.rollback import Rollbacks
from releaseflow.platform.driver import Artifact, DriverRegistry, Resource
from releaseflow.store import catalog
from releaseflow.store import history as history_store
from releaseflow.testing import Fail, FakeDriver, Hang, Succeed

STAGE = "Development"


def artifact(build: str) -> dict[str, Any]:
    return {"kind": "build", "buildService": "builder", "buildId": build, "commit": f"c-{build}"}


def release(ref: str, target: str, kind: str) -> dict[str, Any]:
    return {
        "kind": "Release",
        "ref": ref,
        "spec": {
            "type": "build",
            "origin": {"id": "builder", "build": "${args.build}"},
            "target": {"id": target, "type": kind},
        },
        "settings": {"maxAttempts": 1},
    }


def flow(policy: str = "allow", *, job: bool = True) -> dict[str, Any]:
    steps = [release("api", "api", "service")] + ([release("migrate", "migrate", "job")] if job else [])
    return template(
        workflow(*steps, kind="parallel"), arguments={"build": "b0"}, options={"concurrencyPolicy": policy}
    )


async def deploy(harness: EngineHarness, build: str, **request: Any) -> str:
    """A release run putting ``build`` on api and migrate (the fake answers with that artifact)."""
    harness.driver.script("api", Succeed({"artifact": artifact(build)}))
    harness.driver.script("migrate", Succeed({"artifact": artifact(build)}))
    run = await harness.start(STAGE, arguments={"build": build}, name=f"deploy {build}", **request)
    finished = await harness.run(run.id)
    assert finished.status is RunStatus.SUCCESS, finished.error
    return run.id


async def released_twice(harness: EngineHarness, policy: str = "allow") -> tuple[str, str]:
    """The project seeded with the flow, a worker, and two releases (builds b1 and b2)."""
    await harness.seed(flow(policy))
    harness.start_worker()
    return await deploy(harness, "b1"), await deploy(harness, "b2")


async def deployed(harness: EngineHarness) -> dict[str, str]:
    views = await queries.release_state(harness.db, PROJECT, PIPELINE, STAGE)
    return {view.resource_id: str(view.artifact["buildId"]) for view in views}


def rollbacks(harness: EngineHarness, driver: Any = None) -> Rollbacks:
    return Rollbacks(harness.engine, DriverRegistry({"fake": driver or harness.driver}))


async def roll_back(harness: EngineHarness, run_id: str, builds: dict[str, str], **options: Any) -> str:
    """Roll back to ``run_id``; the fake answers each target's deploy with the build it is asked for."""
    for target, build in builds.items():
        harness.driver.script(target, Succeed({"artifact": artifact(build)}))
    started = await rollbacks(harness).start(run_id, by="alice", **options)
    await harness.run(started.run.id)
    return started.run.id


async def test_rollback__returns_every_target_to_its_state_after_the_run_and_pins_the_stage(
    harness: EngineHarness,
) -> None:
    first, _ = await released_twice(harness)
    await deploy(harness, "b3")
    assert await deployed(harness) == {"api": "b3", "migrate": "b3"}

    preview = await rollbacks(harness).preview(first)
    assert [(c.resource_id, c.from_artifact, c.to_artifact) for c in preview.plan.changes] == [
        ("api", artifact("b3"), artifact("b1")),
        ("migrate", artifact("b3"), artifact("b1")),
    ]
    # web is a service of the stage that never had a release: nothing to go back to.
    assert [
        (left.resource_id, "nothing was deployed" in left.reason) for left in preview.plan.left_as_is
    ] == [("web", True)]
    assert "not undone" in preview.warning

    rollback_id = await roll_back(harness, first, {"api": "b1", "migrate": "b1"})
    rollback = await queries.run_detail(harness.db, rollback_id)
    assert (rollback.run.status, rollback.run.kind, rollback.run.rollback_of) == (
        RunStatus.SUCCESS,
        "rollback",
        first,
    )
    assert (rollback.run.origin_kind, rollback.run.origin_by) == ("rollback", "alice")
    assert await deployed(harness) == {"api": "b1", "migrate": "b1"}
    # Through the driver like any release: a Release of exactly build b1 per target.
    asked = [(call.resource.id, call.params.get("build")) for call in harness.driver.calls[-2:]]
    assert sorted(asked) == [("api", "b1"), ("migrate", "b1")]
    outcome = await rollback_outcome(harness.db, rollback_id)
    assert [(item.resource_id, item.where) for item in outcome] == [
        ("api", "rolled back"),
        ("migrate", "rolled back"),
    ]
    assert [run.id for run in await rollbacks_of(harness.db, first)] == [rollback_id]

    status = await run_history.pipeline_status(harness.db, PROJECT, PIPELINE)
    header = status.stages[0]
    assert header.pin is not None
    assert (header.pin.by, header.pin.reason, header.pin.run_id) == (
        "alice",
        "rolled back to run deploy b1",
        rollback_id,
    )
    assert header.run is not None and header.run.id == rollback_id
    assert "pinned" in header.next_step


async def test_rollback__of_a_rollback_returns_to_what_the_first_rollback_replaced(
    harness: EngineHarness,
) -> None:
    first, second = await released_twice(harness)
    back = await roll_back(harness, first, {"api": "b1", "migrate": "b1"})
    assert await deployed(harness) == {"api": "b1", "migrate": "b1"}
    # Rolling back to the release before the rollback: forward again.
    await roll_back(harness, second, {"api": "b2", "migrate": "b2"})
    assert await deployed(harness) == {"api": "b2", "migrate": "b2"}
    # And to the rollback run itself: its own state after it ended.
    again = await roll_back(harness, back, {"api": "b1", "migrate": "b1"})
    assert await deployed(harness) == {"api": "b1", "migrate": "b1"}
    assert (await queries.run_detail(harness.db, again)).run.rollback_of == back


async def test_rollback__with_config_restores_the_flow_version_the_run_used(harness: EngineHarness) -> None:
    await harness.seed(flow())
    harness.start_worker()
    first = await deploy(harness, "b1")
    async with harness.db.transaction() as tx:
        await catalog.add_flow_version(
            tx, PROJECT, PIPELINE, STAGE, flow(job=False), "test", datetime.now(UTC)
        )
    await deploy(harness, "b2")
    versions = await queries.flow_versions(harness.db, PROJECT, PIPELINE, STAGE)
    assert [version.version for version in versions] == [1, 2]

    untouched = await roll_back(harness, first, {"api": "b1", "migrate": "b1"})
    assert [
        version.version for version in await queries.flow_versions(harness.db, PROJECT, PIPELINE, STAGE)
    ] == [1, 2]
    assert (await queries.run_detail(harness.db, untouched)).run.flow_version == 2

    await deploy(harness, "b3", origin=RunOrigin(OriginKind.PERSON, "bob"))
    restored_run = await roll_back(harness, first, {"api": "b1", "migrate": "b1"}, restore_config=True)
    versions = await queries.flow_versions(harness.db, PROJECT, PIPELINE, STAGE)
    assert [version.version for version in versions] == [1, 2, 3]
    assert versions[-1].origin == f"restored from run {first} (version 1)" and versions[-1].current
    restored = await queries.flow_version(harness.db, PROJECT, PIPELINE, STAGE, 3)
    original = await queries.flow_version(harness.db, PROJECT, PIPELINE, STAGE, 1)
    assert restored.document == original.document
    assert (await queries.run_detail(harness.db, restored_run)).run.flow_version == 3


async def test_pin__refuses_git_and_webhook_runs_and_a_run_by_hand_clears_it(harness: EngineHarness) -> None:
    first, _ = await released_twice(harness)
    await roll_back(harness, first, {"api": "b1", "migrate": "b1"})

    for origin in (RunOrigin(OriginKind.GIT, "main@abc123"), RunOrigin(OriginKind.WEBHOOK, "ci")):
        with pytest.raises(PinnedError, match="pinned by alice"):
            await harness.start(STAGE, arguments={"build": "b3"}, origin=origin)
    header = (await run_history.pipeline_status(harness.db, PROJECT, PIPELINE)).stages[0]
    assert [(skip.origin_kind, skip.origin_by) for skip in header.skipped] == [
        ("webhook", "ci"),
        ("git", "main@abc123"),
    ]
    assert all("did not start a run" in skip.reason for skip in header.skipped)
    assert await deployed(harness) == {"api": "b1", "migrate": "b1"}

    manual = await deploy(harness, "b3", origin=RunOrigin(OriginKind.PERSON, "bob"))
    detail = await queries.run_detail(harness.db, manual)
    assert any(event.cause.startswith("cleared the stage's pin (pinned by alice") for event in detail.events)
    header = (await run_history.pipeline_status(harness.db, PROJECT, PIPELINE)).stages[0]
    assert header.pin is None and header.skipped == ()
    # Unpinned: a trigger deploys again.
    await deploy(harness, "b4", origin=RunOrigin(OriginKind.GIT, "main@def456"))

    made = await pin_stage(
        harness.db, harness.engine.clock, PROJECT, PIPELINE, STAGE, by="carol", reason="freeze"
    )
    assert made.reason == "freeze"
    with pytest.raises(PinnedError, match="freeze"):
        await harness.start(STAGE, origin=RunOrigin(OriginKind.WEBHOOK))
    cleared = await unpin_stage(harness.db, PROJECT, PIPELINE, STAGE)
    assert cleared is not None and cleared.by == "carol"
    assert await unpin_stage(harness.db, PROJECT, PIPELINE, STAGE) is None


async def test_rollback__failing_midway_says_which_target_is_where(harness: EngineHarness) -> None:
    first, _ = await released_twice(harness)
    harness.driver.script("api", Fail("the new version never became healthy", retryable=False))
    harness.driver.script("migrate", Succeed({"artifact": artifact("b1")}))
    started = await rollbacks(harness).start(first, by="alice")
    finished = await harness.run(started.run.id)
    assert finished.status is RunStatus.FAILED
    outcome = await rollback_outcome(harness.db, finished.id)
    assert [(item.resource_id, item.where, (item.artifact or {}).get("buildId")) for item in outcome] == [
        ("api", "old", "b2"),
        ("migrate", "rolled back", "b1"),
    ]


class ForgetfulDriver(FakeDriver):
    """A fake that says which builds it no longer has (the artifact query of the driver contract)."""

    def __init__(self, gone: set[str]) -> None:
        super().__init__()
        self.gone = gone

    async def artifact_exists(self, artifact: Artifact, resources: dict[str, Resource]) -> bool:
        return artifact.build_id not in self.gone


async def test_rollback__to_artifacts_that_no_longer_exist_is_refused_up_front(
    harness: EngineHarness,
) -> None:
    first, _ = await released_twice(harness)
    before = await run_history.runs_page(harness.db, PROJECT, PIPELINE, STAGE)
    with pytest.raises(ConflictError, match=r"no longer exist:\n  api: build builder:b1") as refused:
        await rollbacks(harness, ForgetfulDriver({"b1"})).start(first, by="alice")
    assert "migrate: build builder:b1" in str(refused.value)
    after = await run_history.runs_page(harness.db, PROJECT, PIPELINE, STAGE)
    assert [run.id for run in after.runs] == [run.id for run in before.runs]


async def test_rollback__waits_behind_an_active_release_instead_of_interleaving(
    harness: EngineHarness,
) -> None:
    await harness.seed(flow("allow"))
    harness.start_worker()
    first = await deploy(harness, "b1")
    await deploy(harness, "b2")
    harness.driver.script("api", Hang())
    harness.driver.script("migrate", Succeed({"artifact": artifact("b3")}))
    busy = await harness.start(STAGE, arguments={"build": "b3"})
    started = await rollbacks(harness).start(first, by="alice")
    assert started.run.status is RunStatus.QUEUED
    assert busy.id in (started.run.waiting_reason or "")
    harness.driver.script("api", Succeed({"artifact": artifact("b1")}))
    harness.driver.script("migrate", Succeed({"artifact": artifact("b1")}))
    await harness.engine.abort_run(busy.id)
    assert (await harness.run(started.run.id)).status is RunStatus.SUCCESS
    assert await deployed(harness) == {"api": "b1", "migrate": "b1"}


async def test_runs__record_their_stage_state_at_conclusion_and_renames_in_events(
    harness: EngineHarness,
) -> None:
    first, _ = await released_twice(harness)
    async with harness.db.read() as tx:
        kept = await history_store.state_after_run(tx, first)
    assert {key: row["artifact"]["buildId"] for key, row in kept.items()} == {"api": "b1", "migrate": "b1"}
    assert {row["set_by_run"] for row in kept.values()} == {first}

    await harness.engine.rename_run(first, name="first release", description="the one that worked")
    events = (await queries.run_detail(harness.db, first)).events
    assert events[-1].cause == (
        "name 'deploy b1' -> 'first release'; description '' -> 'the one that worked'"
    )
    assert events[-1].from_status == events[-1].to_status == "success"


async def test_runs_page__filters_newest_first_with_a_cursor(harness: EngineHarness) -> None:
    await harness.seed(flow())
    harness.start_worker()
    ids = [
        await deploy(harness, f"b{n}", origin=RunOrigin(OriginKind.TOKEN, "ci-token")) for n in range(1, 4)
    ]
    back = await roll_back(harness, ids[0], {"api": "b1", "migrate": "b1"})
    page = await run_history.runs_page(harness.db, PROJECT, PIPELINE, STAGE, limit=2)
    assert [run.id for run in page.runs] == [back, ids[2]]
    assert page.next_cursor is not None
    rest = await run_history.runs_page(harness.db, PROJECT, PIPELINE, STAGE, limit=2, cursor=page.next_cursor)
    assert [run.id for run in rest.runs] == [ids[1], ids[0]] and rest.next_cursor is None
    rollbacks_only = await run_history.runs_page(harness.db, PROJECT, PIPELINE, STAGE, kind="rollback")
    assert [run.id for run in rollbacks_only.runs] == [back]
    by_token = await run_history.runs_page(harness.db, PROJECT, PIPELINE, STAGE, origin="token")
    assert [run.id for run in by_token.runs] == ids[::-1]
    assert by_token.runs[0].origin_by == "ci-token"
    unfinished = await run_history.runs_page(harness.db, PROJECT, PIPELINE, STAGE, concluded=False)
    assert unfinished.runs == []
    failed = await run_history.runs_page(
        harness.db, PROJECT, PIPELINE, STAGE, statuses=["failed"], concluded=True
    )
    assert failed.runs == []


async def test_rollback__offers_the_backups_since_the_run_and_restores_one_only_when_asked(
    harness: EngineHarness,
) -> None:
    backup = {"kind": "AddonBackup", "ref": "backup", "spec": {"addonId": "db", "backupType": "dump"}}
    document = flow()
    document["spec"]["spec"]["steps"].insert(0, backup)
    await harness.seed(document)
    harness.start_worker()
    harness.driver.script("db", Succeed({"id": "bk1"}))
    first = await deploy(harness, "b1")
    harness.driver.script("db", Succeed({"id": "bk2"}))
    second = await deploy(harness, "b2")

    preview = await rollbacks(harness).preview(second)
    assert [(offer.addon_id, offer.backup_id, offer.run_id) for offer in preview.backups] == [
        ("db", "bk2", second)
    ]
    assert len((await rollbacks(harness).preview(first)).backups) == 2
    await roll_back(harness, first, {"api": "b1", "migrate": "b1"})
    assert not [call for call in harness.driver.calls_on("db") if call.operation.value == "restore_backup"]

    with pytest.raises(NotFoundError, match="no backup 'bk9' of addon 'db'"):
        await rollbacks(harness).restore_backup(PROJECT, PIPELINE, STAGE, "db", "bk9", by="alice")
    harness.driver.script("db", Succeed({"id": "restore-1"}))
    restore = await rollbacks(harness).restore_backup(PROJECT, PIPELINE, STAGE, "db", "bk1", by="alice")
    assert (await harness.run(restore.id)).status is RunStatus.SUCCESS
    (call,) = [call for call in harness.driver.calls_on("db") if call.operation.value == "restore_backup"]
    assert call.params["backupId"] == "bk1"
    # A restore is not a deploy by hand: the rollback's pin stays.
    assert (await run_history.pipeline_status(harness.db, PROJECT, PIPELINE)).stages[0].pin is not None


async def test_release__waits_behind_an_active_rollback_even_where_runs_may_overlap(
    harness: EngineHarness,
) -> None:
    first, _ = await released_twice(harness, "allow")
    harness.driver.script("api", Hang())
    harness.driver.script("migrate", Succeed({"artifact": artifact("b1")}))
    rollback = await rollbacks(harness).start(first, by="alice")
    release = await harness.start(
        STAGE, arguments={"build": "b3"}, origin=RunOrigin(OriginKind.PERSON, "bob")
    )
    assert release.status is RunStatus.QUEUED and rollback.run.id in (release.waiting_reason or "")
    harness.driver.script("api", Succeed({"artifact": artifact("b3")}))
    harness.driver.script("migrate", Succeed({"artifact": artifact("b3")}))
    await harness.engine.abort_run(rollback.run.id)
    assert (await harness.run(release.id)).status is RunStatus.SUCCESS

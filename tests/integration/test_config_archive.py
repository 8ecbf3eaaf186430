"""``apply --prune`` of things with history archives them; a dry run is the same plan as the apply."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from releaseflow.domain.config import Configuration, parse_configuration
from releaseflow.domain.config_plan import Plan
from releaseflow.domain.errors import ConflictError, NotFoundError
from releaseflow.domain.statuses import RunStatus
from releaseflow.engine import queries
from releaseflow.engine.clock import SystemClock
from releaseflow.engine.commands import Engine, RunRequest
from releaseflow.engine.configuration import apply_configuration
from releaseflow.platform.available import spec_schemas
from releaseflow.store import catalog, release_state
from releaseflow.store.database import Database

GATE = {
    "apiVersion": "v1.2",
    "spec": {
        "kind": "Workflow",
        "spec": {"type": "sequential", "steps": [{"kind": "Approval", "ref": "gate", "spec": {"amount": 1}}]},
    },
}


def document() -> dict[str, Any]:
    """Stages Development (api-dev) and Old (api-old), each with a flow; a second pipeline ``side``."""
    service = {"runCommand": "python -m http.server"}
    return {
        "projects": [
            {
                "id": "shop",
                "resources": {
                    "services": [
                        {"id": "api-dev", "spec": service},
                        {"id": "api-old", "spec": service},
                        {"id": "spare", "spec": service},
                    ]
                },
                "pipelines": [
                    {
                        "id": "main",
                        "stages": [
                            {"name": "Development", "resources": ["api-dev"], "releaseFlow": GATE},
                            {"name": "Old", "resources": ["api-old"], "releaseFlow": GATE},
                        ],
                    },
                    {"id": "side", "stages": [{"name": "Only", "releaseFlow": GATE}]},
                ],
            }
        ]
    }


def config(doc: dict[str, Any]) -> Configuration:
    return parse_configuration(doc, read_file=lambda _: "", spec_schemas=spec_schemas())


def without(doc: dict[str, Any], *, stage: str | None = None, pipeline: str | None = None) -> dict[str, Any]:
    changed = copy.deepcopy(doc)
    project = changed["projects"][0]
    if pipeline is not None:
        project["pipelines"] = [each for each in project["pipelines"] if each["id"] != pipeline]
    if stage is not None:
        main = project["pipelines"][0]
        main["stages"] = [each for each in main["stages"] if each["name"] != stage]
    return changed


async def start(db: Database, pipeline: str, stage: str) -> str:
    """A run of the stage that has ended (aborted before any worker took it)."""
    engine = Engine(db, SystemClock())
    run = await engine.start_run("shop", pipeline, stage, RunRequest())
    ended = await engine.abort_run(run.id)
    assert ended.status is RunStatus.ABORTED
    return run.id


def shown(plan: Plan) -> list[tuple[str, str]]:
    return [(change.action, change.label) for change in plan.changes if change.action != "unchanged"]


async def test_apply_prune__dry_run_is_the_plan_the_apply_carries_out(db: Database) -> None:
    await apply_configuration(db, config(document()), SystemClock())
    await start(db, "main", "Old")
    pruned = config(without(document(), stage="Old", pipeline="side"))

    dry = await apply_configuration(db, pruned, SystemClock(), prune=True, dry_run=True)
    real = await apply_configuration(db, pruned, SystemClock(), prune=True)

    assert dry == real
    assert shown(real) == [
        ("delete", "pipeline shop/side"),  # no runs: nothing to keep
        ("archive", "stage shop/main/Old"),
    ]
    assert "archived: it has history" in real.render()


async def test_apply_prune__a_run_not_ended_is_refused_by_the_dry_run_as_by_the_apply(db: Database) -> None:
    await apply_configuration(db, config(document()), SystemClock())
    await Engine(db, SystemClock()).start_run("shop", "main", "Old", RunRequest())
    pruned = config(without(document(), stage="Old"))

    refusals = []
    for dry_run in (True, False):
        with pytest.raises(ConflictError) as caught:
            await apply_configuration(db, pruned, SystemClock(), prune=True, dry_run=dry_run)
        refusals.append(str(caught.value))

    assert refusals[0] == refusals[1]
    assert "stage shop/main/Old: release flow shop/main/Old has 1 run not ended yet" in refusals[0]
    async with db.read() as tx:
        assert await catalog.list_stages(tx, "shop", "main") == ["Development", "Old"]


async def test_apply_prune__an_archived_stage_leaves_lists_and_triggers_and_keeps_its_history(
    db: Database,
) -> None:
    await apply_configuration(db, config(document()), SystemClock())
    run_id = await start(db, "main", "Old")

    await apply_configuration(db, config(without(document(), stage="Old")), SystemClock(), prune=True)

    async with db.read() as tx:
        assert await catalog.list_stages(tx, "shop", "main") == ["Development"]
        assert await catalog.stage_resources(tx, "shop", "main", "Old") == []
    with pytest.raises(ConflictError, match="is archived"):
        await start(db, "main", "Old")
    stage = await queries.resolve_stage(db, "shop", "main", "old")
    assert [run.id for run in await queries.list_runs(db, "shop", "main", stage)] == [run_id]
    assert (await queries.run_detail(db, run_id)).run.id == run_id
    assert [view.version for view in await queries.flow_versions(db, "shop", "main", "Old")] == [1]
    # The freed resource may join another stage at once.
    moved = without(document(), stage="Old")
    moved["projects"][0]["pipelines"][0]["stages"][0]["resources"].append("api-old")
    assert shown(await apply_configuration(db, config(moved), SystemClock())) == [
        ("update", "stage shop/main/Development")
    ]


async def test_apply__declaring_an_archived_stage_again_restores_it(db: Database) -> None:
    await apply_configuration(db, config(document()), SystemClock())
    run_id = await start(db, "main", "Old")
    await apply_configuration(db, config(without(document(), stage="Old")), SystemClock(), prune=True)

    plan = await apply_configuration(db, config(document()), SystemClock())

    assert shown(plan) == [
        ("restore", "stage shop/main/Old"),
        ("restore", "release flow shop/main/Old"),
    ]
    assert "restored from the archive" in plan.render()
    async with db.read() as tx:
        assert await catalog.list_stages(tx, "shop", "main") == ["Development", "Old"]
        flow = await catalog.get_flow(tx, "shop", "main", "Old")
        assert flow is not None and flow.current_version == 1  # same document: no new version
        assert [row["id"] for row in await catalog.stage_resources(tx, "shop", "main", "Old")] == ["api-old"]
    assert run_id in {run.id for run in await queries.list_runs(db, "shop", "main", "Old")}
    await start(db, "main", "Old")
    assert not (await apply_configuration(db, config(document()), SystemClock())).has_changes


async def test_apply_prune__a_pipeline_and_a_flow_with_runs_are_archived(db: Database) -> None:
    await apply_configuration(db, config(document()), SystemClock())
    await start(db, "side", "Only")
    await start(db, "main", "Development")
    no_flow = without(document(), pipeline="side")
    del no_flow["projects"][0]["pipelines"][0]["stages"][0]["releaseFlow"]

    plan = await apply_configuration(db, config(no_flow), SystemClock(), prune=True)

    assert shown(plan) == [
        ("archive", "pipeline shop/side"),
        ("archive", "release flow shop/main/Development"),
    ]
    async with db.read() as tx:
        assert [row["id"] for row in await catalog.list_pipelines(tx, "shop")] == ["main"]
        assert await catalog.get_pipeline(tx, "shop", "side") is not None  # by id, still there
        assert await catalog.get_flow(tx, "shop", "main", "Development") is None
    assert len(await queries.list_runs(db, "shop", "side", "Only")) == 1
    restored = await apply_configuration(db, config(document()), SystemClock(), prune=True)
    assert shown(restored) == [
        ("restore", "release flow shop/main/Development"),
        ("restore", "pipeline shop/side"),
        ("restore", "stage shop/side/Only"),
        ("restore", "release flow shop/side/Only"),
    ]


async def test_apply_prune__a_resource_with_deployments_is_archived_one_without_is_deleted(
    db: Database,
) -> None:
    await apply_configuration(db, config(document()), SystemClock())
    run_id = await start(db, "main", "Development")
    clock = SystemClock()
    async with db.transaction() as tx:
        await release_state.record_deploy(
            tx,
            project_id="shop",
            resource_id="api-dev",
            pipeline_id="main",
            stage="Development",
            artifact={"kind": "image", "image": "api:1"},
            run_id=run_id,
            node_path="spec.spec.steps[0]",
            at=clock.now(),
        )
    smaller = copy.deepcopy(document())
    project = smaller["projects"][0]
    project["resources"]["services"] = [{"id": "api-old", "spec": {"runCommand": "serve"}}]
    project["pipelines"][0]["stages"][0]["resources"] = []

    plan = await apply_configuration(db, config(smaller), clock, prune=True)

    assert [(a, label) for a, label in shown(plan) if label.startswith("resource")] == [
        ("update", "resource shop/api-old"),
        ("archive", "resource shop/api-dev"),
        ("delete", "resource shop/spare"),
    ]
    async with db.read() as tx:
        assert [row["id"] for row in await catalog.list_resources(tx, "shop")] == ["api-old"]
        every = await catalog.list_resources(tx, "shop", include_archived=True)
        assert [row["id"] for row in every] == ["api-dev", "api-old"]
        assert len(await release_state.history(tx, "shop", "main")) == 1
    restored = await apply_configuration(db, config(document()), clock)
    assert ("restore", "resource shop/api-dev") in shown(restored)


async def test_release_state__lists_no_archived_stage_or_resource_unless_it_is_named(db: Database) -> None:
    await apply_configuration(db, config(document()), SystemClock())
    deployed = {}
    for stage, resource in (("Development", "api-dev"), ("Old", "api-old")):
        run_id = await start(db, "main", stage)
        deployed[resource] = run_id
        async with db.transaction() as tx:
            await release_state.record_deploy(
                tx,
                project_id="shop",
                resource_id=resource,
                pipeline_id="main",
                stage=stage,
                artifact={"kind": "image", "image": f"{resource}:1"},
                run_id=run_id,
                node_path="spec.spec.steps[0]",
                at=SystemClock().now(),
            )

    async def listed(stage: str | None = None, *, history: bool = False) -> list[tuple[str, str]]:
        views = await queries.release_state(db, "shop", "main", stage, history=history)
        return [(view.stage, view.resource_id) for view in views]

    await apply_configuration(db, config(without(document(), stage="Old")), SystemClock(), prune=True)

    assert await listed() == [("Development", "api-dev")]
    # Named, an archived stage still shows what it ran; the history keeps every deploy.
    assert await listed("Old") == [("Old", "api-old")]
    assert sorted(await listed(history=True)) == [("Development", "api-dev"), ("Old", "api-old")]
    with pytest.raises(NotFoundError) as caught:
        await queries.resolve_stage(db, "shop", "main", "Olds")
    assert str(caught.value).endswith("(there are: Development)")

    await start(db, "side", "Only")  # history: pruning archives the pipeline
    smaller = without(document(), stage="Old", pipeline="side")
    project = smaller["projects"][0]
    project["resources"]["services"] = [{"id": "spare", "spec": {"runCommand": "serve"}}]
    project["pipelines"][0]["stages"][0]["resources"] = []
    await apply_configuration(db, config(smaller), SystemClock(), prune=True)

    assert await listed() == []
    assert await listed("Development") == []
    assert len(await listed(history=True)) == 2
    with pytest.raises(NotFoundError, match=r"no pipeline 'mian' in project 'shop' \(there are: main\)$"):
        await queries.release_state(db, "shop", "mian", None)

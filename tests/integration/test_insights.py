"""Knowing what is where: stages side by side, a stage's timeline, two runs compared, delivery figures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.integration.support import PIPELINE, PROJECT, EngineHarness, deploy, template, workflow

from releaseflow.domain.errors import ConflictError
from releaseflow.domain.release_history import artifact_key
from releaseflow.domain.statuses import RunStatus
from releaseflow.engine.insights import compare_pipeline, diff_runs, pipeline_metrics, stage_timeline
from releaseflow.platform.driver import Artifact
from releaseflow.store import catalog
from releaseflow.testing import Fail, Succeed
from releaseflow.wire.history import timeline as timeline_json

V1 = Artifact(kind="build", build_service="builder", build_id="bld-1", commit="c0ffee1", branch="main")
V2 = Artifact(kind="build", build_service="builder", build_id="bld-2", commit="c0ffee2", branch="main")

PROMOTE = {
    "kind": "Release",
    "ref": "promote",
    "spec": {
        "type": "deployment",
        "origin": {"id": "api", "type": "service"},
        "target": {"id": "api-staging", "type": "service"},
    },
}


async def release(harness: EngineHarness, stage: str = "Development", **request: object) -> str:
    run = await harness.start(stage=stage, **request)
    done = await harness.run(run.id)
    return done.id


async def history(harness: EngineHarness) -> tuple[str, str, str, str]:
    """Development deploys v1, Staging promotes it, Development deploys v2 on a new flow version,
    then a Development run fails."""
    harness.driver.script(
        "api",
        Succeed({"artifact": V1.to_data()}),
        Succeed({"artifact": V2.to_data()}),
        Fail("unhealthy", retryable=False),
    )
    harness.driver.script("api-staging", Succeed({"artifact": V1.to_data()}))
    await harness.seed(template(workflow(deploy("deploy"))))
    async with harness.db.transaction() as tx:
        now = datetime.now(UTC)
        await catalog.add_flow_version(
            tx, PROJECT, PIPELINE, "Staging", template(workflow(PROMOTE)), "test", now
        )
    harness.start_worker()
    first = await release(harness, arguments={"note": "one"})
    staged = await release(harness, "Staging")
    async with harness.db.transaction() as tx:
        document = template(workflow({**deploy("deploy"), "condition": "running"}))
        await catalog.add_flow_version(tx, PROJECT, PIPELINE, "Development", document, "test", now)
    second = await release(harness, arguments={"note": "two"})
    failed = await release(harness)
    return first, staged, second, failed


async def test_insights__stages_side_by_side_say_which_differ(harness: EngineHarness) -> None:
    _, staged, second, _ = await history(harness)

    comparison = await compare_pipeline(harness.db, PROJECT, PIPELINE)

    assert comparison.stages == ("Development", "Staging", "Production")
    api = next(lineage for lineage in comparison.lineages if lineage.label == "api-staging")
    development, staging = api.cell("Development"), api.cell("Staging")
    assert [(resource, d.run_id if d else None) for resource, d in development.resources] == [("api", second)]
    assert [(resource, d.run_id if d else None) for resource, d in staging.resources] == [
        ("api-staging", staged)
    ]
    assert development.keys == {artifact_key(V2.to_data())}
    difference = comparison.differences[0]
    assert (difference.left, difference.right, difference.differing) == (
        "Development",
        "Staging",
        ("api-staging",),
    )
    assert comparison.differences[1].compared == 0  # Production holds nothing of this lineage


async def test_insights__timeline_lists_every_change_with_its_run(harness: EngineHarness) -> None:
    first, _, second, _ = await history(harness)

    entries = await stage_timeline(harness.db, PROJECT, PIPELINE, "Development")

    assert [(e.change.entry.run_id, e.change.previous, e.change.entry.artifact) for e in entries] == [
        (second, V1.to_data(), V2.to_data()),
        (first, None, V1.to_data()),
    ]
    assert all(entry.run_kind == "release" and entry.change.changed for entry in entries)
    (newest,) = await stage_timeline(harness.db, PROJECT, PIPELINE, "Development", limit=1)
    assert newest.change.previous == V1.to_data()  # looked up: the deploy before it was not read
    (shown,) = timeline_json([newest])
    assert (shown["from"], shown["to"], shown["runId"], shown["changed"]) == (
        V1.to_data(),
        V2.to_data(),
        second,
        True,
    )


async def test_insights__diff_of_two_runs_shows_template_arguments_and_artifacts(
    harness: EngineHarness,
) -> None:
    first, staged, second, _ = await history(harness)

    diff = await diff_runs(harness.db, first, second)

    assert (diff.first.flow_version, diff.second.flow_version) == (1, 2)
    assert any(line.startswith("+") and '"condition": "running"' in line for line in diff.template)
    assert [(c.key, c.before, c.after) for c in diff.arguments] == [("note", "one", "two")]
    assert diff.overrides == []
    assert [(c.key, c.before, c.after) for c in diff.artifacts] == [("api", V1.to_data(), V2.to_data())]
    same = await diff_runs(harness.db, second, second)
    assert same.template == [] and same.artifacts == [] and same.same_artifacts == ["api"]
    with pytest.raises(ConflictError, match="different stages"):
        await diff_runs(harness.db, first, staged)


async def test_insights__metrics_count_deploys_failures_and_time_to_restore(harness: EngineHarness) -> None:
    first, _, second, failed = await history(harness)
    harness.driver.script("api", Succeed({"artifact": V2.to_data()}))
    restored = await release(harness)

    (development,) = await pipeline_metrics(
        harness.db, PROJECT, PIPELINE, "Development", now=datetime.now(UTC)
    )
    figures = development.metrics
    assert (figures.releases, figures.deployments) == (4, 3)
    assert figures.failed == (failed,)
    assert figures.change_failure_rate == pytest.approx(0.25)
    (incident,) = figures.incidents
    assert (incident.bad_runs, incident.restored_by) == ((failed,), restored)
    assert figures.mean_time_to_restore is not None and figures.mean_time_to_restore.total_seconds() > 0
    assert figures.lead_times == () and figures.deploys_without_commit_time == 3
    every = await pipeline_metrics(harness.db, PROJECT, PIPELINE, None, now=datetime.now(UTC))
    assert [each.stage for each in every] == ["Development", "Staging"]
    assert every[1].metrics.deployments == 1
    assert (await harness.run(first)).status is RunStatus.SUCCESS
    assert second in development.run_names

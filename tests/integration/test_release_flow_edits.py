"""Checking and saving release flow versions as the web editor does: one validator for the inline
errors and for the save, and a save refused when another version was stored since the one edited."""

from __future__ import annotations

import pytest
from tests.integration.support import PIPELINE, PROJECT, EngineHarness, deploy, template, workflow

from releaseflow.domain.errors import ConflictError, ValidationError
from releaseflow.engine import queries, release_flows
from releaseflow.engine.clock import SystemClock


async def test_check_release_flow__names_structural_and_stage_problems_and_stores_nothing(
    harness: EngineHarness,
) -> None:
    await harness.seed(template(workflow(deploy("api"))))
    valid = template(workflow(deploy("api"), deploy("web", service="web"), kind="parallel"))
    checked = await release_flows.check_release_flow(harness.db, PROJECT, PIPELINE, "development", valid)
    assert [node.ref for node in checked.nodes() if node.ref] == ["api", "web"]

    unknown_service = template(workflow(deploy("api", service="nope")))
    with pytest.raises(ValidationError) as stage_problem:
        await release_flows.check_release_flow(harness.db, PROJECT, PIPELINE, "Development", unknown_service)
    assert [issue.path for issue in stage_problem.value.issues] == ["spec.spec.steps[0].spec.target.id"]

    bad_type = template(workflow(deploy("api"), kind="sideways"))
    with pytest.raises(ValidationError) as structural:
        await release_flows.check_release_flow(harness.db, PROJECT, PIPELINE, "Development", bad_type)
    assert [issue.path for issue in structural.value.issues] == ["spec.spec.type"]
    versions = await queries.flow_versions(harness.db, PROJECT, PIPELINE, "Development")
    assert [view.version for view in versions] == [1]


async def test_update_release_flow__based_on_an_older_version_is_refused(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(deploy("api"))))
    second = template(workflow(deploy("api"), deploy("web", service="web")))
    made = await release_flows.update_release_flow(
        harness.db, SystemClock(), PROJECT, PIPELINE, "Development", second, "editor", based_on=1
    )
    assert made == 2
    with pytest.raises(ConflictError, match="at version 2 now, not at version 1"):
        await release_flows.update_release_flow(
            harness.db, SystemClock(), PROJECT, PIPELINE, "Development", second, "editor", based_on=1
        )
    current = await queries.flow_version(harness.db, PROJECT, PIPELINE, "Development")
    assert current.version == 2 and current.document == second

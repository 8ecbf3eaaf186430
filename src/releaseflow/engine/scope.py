"""What a stage contains, as the template rules and the executors need it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from releaseflow.domain.template_rules import StageScope
from releaseflow.platform.driver import Artifact, Resource
from releaseflow.store import catalog
from releaseflow.store.database import Transaction


async def stage_scope(tx: Transaction, project_id: str, pipeline_id: str, stage: str) -> StageScope:
    stages = await catalog.list_stages(tx, project_id, pipeline_id)
    previous = stages[stages.index(stage) - 1] if stage in stages and stages.index(stage) > 0 else None
    here = await catalog.stage_resources(tx, project_id, pipeline_id, stage)
    before = await catalog.stage_resources(tx, project_id, pipeline_id, previous) if previous else []
    resources = await catalog.list_resources(tx, project_id)
    build_services = [row["id"] for row in resources if row["kind"] == "build_service"]

    def ids(rows: list[dict[str, str]], kind: str) -> frozenset[str]:
        return frozenset(row["id"] for row in rows if row["kind"] == kind)

    return StageScope(
        stage=stage,
        services=ids(here, "service"),
        jobs=ids(here, "job"),
        addons=ids(here, "addon"),
        build_services=frozenset(build_services),
        previous_stage=previous,
        previous_services=ids(before, "service"),
        previous_jobs=ids(before, "job"),
        drivers={row["id"]: row["driver"] for row in resources},
    )


@dataclass(frozen=True)
class ActionScope:
    """What an action on a platform needs to know about its project, read in one query."""

    resources: Mapping[str, Resource]
    deployed: Mapping[str, Artifact]  # what release state says each service and job runs
    stage_resources: frozenset[str]  # ids of the services, jobs and addons of the run's stage


async def action_scope(tx: Transaction, project_id: str, pipeline_id: str, stage: str) -> ActionScope:
    rows = await catalog.resources_in_context(tx, project_id)
    return ActionScope(
        resources={
            row["id"]: Resource(id=row["id"], kind=row["kind"], driver=row["driver"], spec=row["spec"] or {})
            for row in rows
        },
        deployed={row["id"]: Artifact.from_data(row["artifact"]) for row in rows if row["artifact"]},
        stage_resources=frozenset(
            row["id"] for row in rows if (row["placed_pipeline"], row["placed_stage"]) == (pipeline_id, stage)
        ),
    )

"""Projects as the API reads them: the projects, and one project whole (its resources with the stage
each belongs to, what each runs and the latest record of each, and its pipelines with their stages).

A resource's status is what releaseflow recorded (its latest build, job run, deploy or backup), not
a probe of the platform: a read must not act, and some drivers' checks do (the local driver's addon
check creates and starts the database it looks for).
"""

from __future__ import annotations

from dataclasses import dataclass

from releaseflow.domain.errors import NotFoundError
from releaseflow.engine import release_flows
from releaseflow.engine.platform_records import PlatformRecord, latest_of
from releaseflow.engine.queries import ReleaseView, release_state
from releaseflow.engine.release_flows import CatalogEntry, PipelineDetail, catalog_entry
from releaseflow.store import catalog
from releaseflow.store.database import Database

# A project as lists show it: the same fields as a pipeline's entry.
ProjectView = CatalogEntry


@dataclass(frozen=True)
class ResourceView:
    id: str
    kind: str  # service, job, addon or build_service
    driver: str
    pipeline_id: str | None  # the stage holding it (None: in no stage, e.g. a build service)
    stage: str | None
    release: ReleaseView | None  # what a service or job runs (None: nothing deployed yet)
    latest: PlatformRecord | None  # the newest build, job run, deploy or backup acting on it


@dataclass(frozen=True)
class ProjectDetail:
    project: ProjectView
    resources: tuple[ResourceView, ...]
    pipelines: tuple[PipelineDetail, ...]


async def list_projects(db: Database, only: str | None = None) -> list[ProjectView]:
    """Every project, or only the one ``only`` names (none when it does not exist)."""
    async with db.read() as tx:
        rows = await catalog.list_projects(tx)
    return [catalog_entry(row) for row in rows if only is None or row["id"] == only]


async def project_detail(db: Database, project_id: str) -> ProjectDetail:
    found = await list_projects(db, project_id)
    if not found:
        raise NotFoundError(f"no project '{project_id}'")
    async with db.read() as tx:
        resources = await catalog.list_resources(tx, project_id)
        pipeline_ids = [row["id"] for row in await catalog.list_pipelines(tx, project_id)]
    pipelines = [await release_flows.pipeline(db, project_id, pipeline_id) for pipeline_id in pipeline_ids]
    place = {
        resource_id: (pipeline.summary.id, stage.name)
        for pipeline in pipelines
        for stage in pipeline.stages
        for resource_id, _ in stage.resources
    }
    runs: dict[str, ReleaseView] = {}
    for pipeline_id in pipeline_ids:
        for view in await release_state(db, project_id, pipeline_id, None):
            # A resource is in one stage at most: what that stage records is what it runs.
            if place.get(view.resource_id) == (pipeline_id, view.stage) or view.resource_id not in runs:
                runs[view.resource_id] = view
    views = [
        ResourceView(
            id=row["id"],
            kind=row["kind"],
            driver=row["driver"],
            pipeline_id=place.get(row["id"], (None, None))[0],
            stage=place.get(row["id"], (None, None))[1],
            release=runs.get(row["id"]),
            # One short read each: the newest of the resource's records, however long the history.
            latest=await latest_of(db, project_id, row["id"], row["kind"]),
        )
        for row in resources
    ]
    return ProjectDetail(found[0], tuple(views), tuple(pipelines))

"""Projects over HTTP: the projects a token may see, and one project whole, with its resources
(the stage each belongs to, what it runs, its latest record) and its pipelines' stages."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from releaseflow.api.answers import Answer
from releaseflow.api.northflank import APP, VIEWER
from releaseflow.api.routing import router_of
from releaseflow.application import Application
from releaseflow.engine import projects
from releaseflow.engine.tokens import Principal
from releaseflow.wire.projects import ProjectDetailShape, ProjectShape

PROJECTS = "/api/projects"


class ProjectList(BaseModel):
    projects: list[ProjectShape]


def project_routes() -> APIRouter:
    return router_of(
        "projects",
        [
            ("GET", PROJECTS, list_projects, "The projects this token may see"),
            (
                "GET",
                PROJECTS + "/{projectId}",
                get_project,
                "A project: its resources (status, what each runs) and pipelines (each stage's resources)",
            ),
        ],
        response_model_exclude_unset=True,
    )


async def list_projects(who: Principal = VIEWER, app: Application = APP) -> Answer[ProjectList]:
    found = [view for view in await projects.list_projects(app.db) if who.sees(view.id)]
    return Answer[ProjectList](data=ProjectList(projects=[ProjectShape.of(view) for view in found]))


async def get_project(
    projectId: str, _: Principal = VIEWER, app: Application = APP
) -> Answer[ProjectDetailShape]:
    detail = await projects.project_detail(app.db, projectId)
    return Answer[ProjectDetailShape](data=ProjectDetailShape.of_detail(detail))

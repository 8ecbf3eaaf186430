"""A ``Configuration`` as the document a file would be, with every release flow inline.

``releaseflow apply`` through a server reads the file and the release flow files it names here, on
the client (``engine.configuration.load_configuration_file``), and sends the server this document:
the server never reads a path from the client's machine. Parsing the document gives back the same
``Configuration`` (``parse_configuration`` is its inverse); what the file left to defaults (a
project's name, a pipeline's stages, a resource's driver) is written out.
"""

from __future__ import annotations

from typing import Any

from releaseflow.domain.config_model import (
    RESOURCE_SECTIONS,
    Configuration,
    PipelineConfig,
    ProjectConfig,
    StageConfig,
)


def configuration_document(config: Configuration) -> dict[str, Any]:
    return {"projects": [_project(project) for project in config.projects]}


def _project(project: ProjectConfig) -> dict[str, Any]:
    resources = {
        section: [
            {"id": resource.id, "driver": resource.driver, "spec": dict(resource.spec)}
            for resource in project.resources
            if resource.kind == kind
        ]
        for section, kind in RESOURCE_SECTIONS.items()
    }
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "resources": resources,
        "pipelines": [_pipeline(pipeline) for pipeline in project.pipelines],
    }


def _pipeline(pipeline: PipelineConfig) -> dict[str, Any]:
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "description": pipeline.description,
        "stages": [_stage(stage) for stage in pipeline.stages],
    }


def _stage(stage: StageConfig) -> dict[str, Any]:
    document: dict[str, Any] = {"name": stage.name, "resources": list(stage.resources)}
    if stage.release_flow is not None:
        document["releaseFlow"] = stage.release_flow
    return document

"""Configuration as code: the model a configuration file becomes, and path helpers.

``config`` parses and validates a file into these values; ``config_plan`` compares two of them. The
store builds the same values from what it holds, so a plan compares like with like.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from releaseflow.domain.errors import Issue

_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")

ResourceKind = Literal["service", "job", "addon", "build_service"]

DEFAULT_DRIVER = "local"
DEFAULT_STAGES = ("Development", "Staging", "Production")

# Ids double as DNS labels (container, host and volume names in drivers), hence the label rules.
SLUG_PATTERN = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")
SLUG_RULE = (
    "use 1-63 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen"
)
# Northflank's pipeline name rule (compat section 1); stage names use the same characters.
NAME_PATTERN = re.compile(r"^[a-zA-Z]((-|\s)?[a-zA-Z0-9]+((-|\s)[a-zA-Z0-9]+)*)?$")
NAME_CHARACTERS = "starting with a letter; letters and digits, with single spaces or hyphens between them"
PIPELINE_NAME_LENGTH = (3, 39)
STAGE_NAME_MAX_LENGTH = 39
PROJECT_NAME_MAX_LENGTH = 100
DESCRIPTION_MAX_LENGTH = 200

# The file's key under a project's ``resources`` for each kind, in the order they are listed.
RESOURCE_SECTIONS: Mapping[str, ResourceKind] = {
    "services": "service",
    "jobs": "job",
    "addons": "addon",
    "buildServices": "build_service",
}
KIND_WORDS: Mapping[ResourceKind, str] = {
    "service": "service",
    "job": "job",
    "addon": "addon",
    "build_service": "build service",
}
# Kinds a stage may hold: build services are never placed in a stage (compat section 1).
STAGE_KINDS: frozenset[ResourceKind] = frozenset({"service", "job", "addon"})


@dataclass(frozen=True)
class ResourceConfig:
    """A service, job, addon or build service; ``spec`` is the driver's own (open) mapping."""

    id: str
    kind: ResourceKind
    driver: str = DEFAULT_DRIVER
    spec: Mapping[str, Any] = field(default_factory=dict)
    # What the store knows beyond the file, for planning; never part of a comparison.
    archived: bool = field(default=False, compare=False)
    has_history: bool = field(default=False, compare=False)  # a run deployed to it


@dataclass(frozen=True)
class StageConfig:
    """One stage of a pipeline: the resources it holds and its release flow template document."""

    name: str
    resources: tuple[str, ...] = ()
    release_flow: Mapping[str, Any] | None = None
    # The ``releaseFlowFile`` the flow came from (normalised), for messages; never compared.
    release_flow_file: str | None = field(default=None, compare=False)
    # What the store knows beyond the file, for planning; never part of a comparison.
    archived: bool = field(default=False, compare=False)  # the stage, with its flow
    flow_archived: bool = field(default=False, compare=False)  # only the flow (the stage is listed)
    has_runs: bool = field(default=False, compare=False)  # its release flow has runs
    unfinished_runs: int = field(default=0, compare=False)  # runs of its flow that have not ended


@dataclass(frozen=True)
class PipelineConfig:
    id: str
    name: str
    description: str = ""
    stages: tuple[StageConfig, ...] = ()
    archived: bool = field(default=False, compare=False)

    def stage(self, name: str) -> StageConfig | None:
        return next((stage for stage in self.stages if stage.name == name), None)

    @property
    def has_runs(self) -> bool:
        return any(stage.has_runs for stage in self.stages)


@dataclass(frozen=True)
class ProjectConfig:
    id: str
    name: str
    description: str = ""
    resources: tuple[ResourceConfig, ...] = ()
    pipelines: tuple[PipelineConfig, ...] = ()

    def resource(self, resource_id: str) -> ResourceConfig | None:
        return next((resource for resource in self.resources if resource.id == resource_id), None)

    def pipeline(self, pipeline_id: str) -> PipelineConfig | None:
        return next((pipeline for pipeline in self.pipelines if pipeline.id == pipeline_id), None)


@dataclass(frozen=True)
class Configuration:
    projects: tuple[ProjectConfig, ...] = ()

    def project(self, project_id: str) -> ProjectConfig | None:
        return next((project for project in self.projects if project.id == project_id), None)


def join_key(path: str, key: object) -> str:
    """JSON path of ``key`` inside the mapping at ``path``: ``a.b``, or ``a["odd key"]`` when the key
    is not a plain word (the same notation the template parser uses)."""
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    text = f'["{key}"]' if isinstance(key, str) else f"[{key!r}]"
    return f"{path}{text}"


def join_index(path: str, index: int) -> str:
    return f"{path}[{index}]"


def join_inner(path: str, inner: str) -> str:
    """``path`` followed by a path relative to the document found there."""
    if not inner:
        return path
    return f"{path}{inner}" if inner.startswith("[") else f"{path}.{inner}" if path else inner


def json_issues(value: Any, path: str) -> list[Issue]:
    """Issues for values JSON cannot hold (YAML dates, non-string keys, NaN): flows and specs are
    stored and compared as JSON, so they must survive the round trip unchanged."""
    if value is None or isinstance(value, str | bool | int):
        return []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [Issue(path, "must be a finite number")]
    if isinstance(value, Mapping):
        issues: list[Issue] = []
        for key, item in value.items():
            if not isinstance(key, str):
                issues.append(Issue(path, f"key {key!r} must be a string (quote it)"))
            else:
                issues.extend(json_issues(item, join_key(path, key)))
        return issues
    if isinstance(value, list | tuple):
        return [
            issue for index, item in enumerate(value) for issue in json_issues(item, join_index(path, index))
        ]
    return [Issue(path, f"a {type(value).__name__} is not a JSON value (quote it to make it a string)")]

"""Configuration as code: the model of one configuration file and its validation.

A configuration file describes projects, their resources, pipelines with ordered stages, and one
release flow per stage (see ``docs/configuration.md``). ``parse_configuration`` turns the loaded
document into a ``Configuration`` or raises one ``ValidationError`` listing every problem, each at
its path from the file root. This module does no I/O: release flow files are read through the
``read_file`` callable the caller passes in. Reconciliation lives in ``config_plan``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from releaseflow.domain.config_model import (
    DEFAULT_DRIVER,
    DEFAULT_STAGES,
    DESCRIPTION_MAX_LENGTH,
    KIND_WORDS,
    NAME_CHARACTERS,
    NAME_PATTERN,
    PIPELINE_NAME_LENGTH,
    PROJECT_NAME_MAX_LENGTH,
    RESOURCE_SECTIONS,
    SLUG_PATTERN,
    SLUG_RULE,
    STAGE_KINDS,
    STAGE_NAME_MAX_LENGTH,
    Configuration,
    PipelineConfig,
    ProjectConfig,
    ResourceConfig,
    ResourceKind,
    StageConfig,
    join_index,
    join_inner,
    join_key,
    json_issues,
)
from releaseflow.domain.config_plan import Change, Plan, plan_changes
from releaseflow.domain.documents import load_document
from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.spec_schema import SpecSchemas, check_spec
from releaseflow.domain.template_parser import parse_template
from releaseflow.domain.template_rules import StageScope, check_refs, check_template
from releaseflow.domain.text import unsafe_characters

# The model and the plan are re-exported: callers can import the whole configuration API from here.
__all__ = [
    "Change",
    "Configuration",
    "FlowFileRefused",
    "PipelineConfig",
    "Plan",
    "ProjectConfig",
    "ReadFile",
    "ResourceConfig",
    "ResourceKind",
    "StageConfig",
    "parse_configuration",
    "plan_changes",
    "stage_scope",
]

_ROOT_KEYS = ("projects",)
_PROJECT_KEYS = ("id", "name", "description", "resources", "pipelines")
_RESOURCE_KEYS = ("id", "driver", "spec")
_PIPELINE_KEYS = ("id", "name", "description", "stages")
_STAGE_KEYS = ("name", "resources", "releaseFlow", "releaseFlowFile")

ReadFile = Callable[[str], str]


class FlowFileRefused(Exception):
    """Raised by a ``read_file`` that will not read a file (a symbolic link, a path leading out of
    the configuration's folder); its message is reported as the file's problem."""


def parse_configuration(
    document: Any,
    *,
    read_file: ReadFile,
    source: str = "<config>",
    spec_schemas: SpecSchemas | None = None,
) -> Configuration:
    """Validate a loaded configuration document and build the model.

    ``read_file`` receives each ``releaseFlowFile`` as a normalised relative POSIX path (already
    checked to stay inside the configuration's folder) and returns its text; the caller resolves it
    against the configuration file's folder. An ``OSError`` it raises becomes an issue.
    ``spec_schemas`` are the spec schemas of the known drivers (by driver, then resource kind): with
    them, every resource must name a known driver that runs its kind, and its ``spec`` is checked
    against that driver's schema. Without them (tests with fake drivers) ``spec`` stays open.
    Raises ``ValidationError`` (subject ``configuration <source>``) listing every issue.
    """
    parser = _Parser(read_file, spec_schemas)
    configuration = parser.configuration(document)
    if parser.issues:
        raise ValidationError(parser.issues, subject=f"configuration {source}")
    return configuration


@dataclass
class _Loaded:
    """A release flow file, read and loaded once however many stages name it."""

    document: Any = None
    issues: list[Issue] = field(default_factory=list)


class _Parser:
    def __init__(self, read_file: ReadFile, spec_schemas: SpecSchemas | None = None) -> None:
        self.read_file = read_file
        self.spec_schemas = spec_schemas
        self.issues: list[Issue] = []
        self._files: dict[str, _Loaded] = {}

    def issue(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    # -- generic shape checks ---------------------------------------------------------------------

    def mapping(self, value: Any, path: str, keys: Sequence[str], what: str) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.issue(path, f"must be a mapping ({what})")
            return None
        for key in value:
            if key not in keys:
                expected = ", ".join(keys)
                self.issue(join_key(path, str(key)), f"unknown key (expected one of: {expected})")
        return value

    def items(self, value: Any, path: str) -> list[Any]:
        """A list-valued field; null means empty, as YAML writes an empty field that way."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.issue(path, "must be a list")
            return []
        return value

    def text(self, value: Any, path: str, *, max_length: int | None = None) -> str | None:
        if not isinstance(value, str):
            self.issue(path, "must be a string")
            return None
        # Every name and description is text a terminal will show: no control characters.
        if (problem := unsafe_characters(value)) is not None:
            self.issue(path, problem)
            return None
        if max_length is not None and len(value) > max_length:
            self.issue(path, f"must be at most {max_length} characters (has {len(value)})")
            return None
        return value

    def slug(self, value: Any, path: str, what: str) -> str | None:
        if value is None:
            self.issue(path, "is required")
            return None
        if not isinstance(value, str):
            self.issue(path, f"must be a string ({what})")
            return None
        if not SLUG_PATTERN.match(value):
            self.issue(path, f"'{value}' is not a valid {what}: {SLUG_RULE}")
            return None
        return value

    # -- the document ------------------------------------------------------------------------------

    def configuration(self, document: Any) -> Configuration:
        if not isinstance(document, Mapping):
            self.issue("", "the configuration must be a mapping with a 'projects' list")
            return Configuration()
        self.mapping(document, "", _ROOT_KEYS, "the configuration")
        if "projects" not in document:
            self.issue("projects", "is required")
        projects: list[ProjectConfig] = []
        seen: dict[str, str] = {}
        for index, item in enumerate(self.items(document.get("projects"), "projects")):
            path = join_index("projects", index)
            project = self.project(item, path)
            if project is None:
                continue
            if project.id in seen:
                self.issue(
                    join_key(path, "id"), f"project '{project.id}' is already defined at {seen[project.id]}"
                )
                continue
            seen[project.id] = path
            projects.append(project)
        return Configuration(tuple(projects))

    def project(self, value: Any, path: str) -> ProjectConfig | None:
        body = self.mapping(value, path, _PROJECT_KEYS, "a project")
        if body is None:
            return None
        project_id = self.slug(body.get("id"), join_key(path, "id"), "project id")
        name = project_id
        if body.get("name") is not None:
            name = self.text(body["name"], join_key(path, "name"), max_length=PROJECT_NAME_MAX_LENGTH)
            if name == "":
                self.issue(join_key(path, "name"), "must not be empty")
        description = self.description(body, path)
        resources = self.resources(body.get("resources"), join_key(path, "resources"))
        by_id = {resource.id: resource for resource, _ in resources}
        pipelines = self.pipelines(body.get("pipelines"), join_key(path, "pipelines"), by_id)
        if project_id is None or not name:
            return None
        return ProjectConfig(
            id=project_id,
            name=name,
            description=description,
            resources=tuple(resource for resource, _ in resources),
            pipelines=pipelines,
        )

    def description(self, body: Mapping[str, Any], path: str) -> str:
        if body.get("description") is None:
            return ""
        return (
            self.text(body["description"], join_key(path, "description"), max_length=DESCRIPTION_MAX_LENGTH)
            or ""
        )

    def resources(self, value: Any, path: str) -> list[tuple[ResourceConfig, str]]:
        """Every resource of a project with its path; one id space across all kinds."""
        if value is None:
            return []
        body = self.mapping(value, path, tuple(RESOURCE_SECTIONS), "services, jobs, addons, buildServices")
        if body is None:
            return []
        found: list[tuple[ResourceConfig, str]] = []
        seen: dict[str, tuple[ResourceConfig, str]] = {}
        for section, kind in RESOURCE_SECTIONS.items():
            section_path = join_key(path, section)
            for index, item in enumerate(self.items(body.get(section), section_path)):
                item_path = join_index(section_path, index)
                resource = self.resource(item, item_path, kind)
                if resource is None:
                    continue
                if resource.id in seen:
                    first, first_path = seen[resource.id]
                    self.issue(
                        join_key(item_path, "id"),
                        f"id '{resource.id}' is already used by the {KIND_WORDS[first.kind]} "
                        f"at {first_path}; ids are unique across a project's services, jobs, addons "
                        "and build services",
                    )
                    continue
                seen[resource.id] = (resource, item_path)
                found.append((resource, item_path))
        return found

    def resource(self, value: Any, path: str, kind: ResourceKind) -> ResourceConfig | None:
        body = self.mapping(value, path, _RESOURCE_KEYS, f"a {KIND_WORDS[kind]}")
        if body is None:
            return None
        resource_id = self.slug(body.get("id"), join_key(path, "id"), f"{KIND_WORDS[kind]} id")
        driver: str | None = DEFAULT_DRIVER
        if body.get("driver") is not None:
            driver = self.slug(body["driver"], join_key(path, "driver"), "driver name")
        spec: Mapping[str, Any] | None = {}
        if body.get("spec") is not None:
            spec_path = join_key(path, "spec")
            if not isinstance(body["spec"], Mapping):
                self.issue(spec_path, "must be a mapping (the driver's settings)")
                spec = None
            else:
                spec = body["spec"]
                problems = json_issues(spec, spec_path)
                self.issues.extend(problems)
                if problems:
                    spec = None
        if driver is not None and spec is not None:
            # The resource is kept even when its spec is wrong: the issue already fails the file, and
            # stages and flows that name it should not report it missing on top.
            self.driver_spec(driver, kind, spec, path)
        if resource_id is None or driver is None or spec is None:
            return None
        return ResourceConfig(id=resource_id, kind=kind, driver=driver, spec=spec)

    def driver_spec(self, driver: str, kind: ResourceKind, spec: Mapping[str, Any], path: str) -> None:
        """Issues when ``spec`` is not what ``driver`` accepts for ``kind`` (none without schemas)."""
        if self.spec_schemas is None:
            return
        schemas = self.spec_schemas.get(driver)
        if schemas is None:
            known = ", ".join(sorted(self.spec_schemas))
            self.issue(join_key(path, "driver"), f"unknown driver '{driver}' (known drivers: {known})")
            return
        schema = schemas.get(kind)
        if schema is None:
            runs = ", ".join(KIND_WORDS[each] for each in RESOURCE_SECTIONS.values() if each in schemas)
            self.issue(
                join_key(path, "driver"),
                f"the {driver} driver does not run {KIND_WORDS[kind]}s (it runs: {runs})",
            )
            return
        self.issues.extend(check_spec(schema, spec, join_key(path, "spec")))

    def pipelines(
        self, value: Any, path: str, resources: Mapping[str, ResourceConfig]
    ) -> tuple[PipelineConfig, ...]:
        pipelines: list[PipelineConfig] = []
        ids: dict[str, str] = {}
        names: dict[str, str] = {}
        # Where each resource was first placed, across every pipeline of the project.
        placements: dict[str, str] = {}
        for index, item in enumerate(self.items(value, path)):
            item_path = join_index(path, index)
            pipeline = self.pipeline(item, item_path, resources, placements)
            if pipeline is None:
                continue
            if pipeline.id in ids:
                self.issue(
                    join_key(item_path, "id"),
                    f"pipeline '{pipeline.id}' is already defined at {ids[pipeline.id]}",
                )
                continue
            if pipeline.name in names:
                self.issue(
                    join_key(item_path, "name"),
                    f"pipeline name '{pipeline.name}' is already used by {names[pipeline.name]}",
                )
                continue
            ids[pipeline.id] = item_path
            names[pipeline.name] = item_path
            pipelines.append(pipeline)
        return tuple(pipelines)

    def pipeline(
        self,
        value: Any,
        path: str,
        resources: Mapping[str, ResourceConfig],
        placements: dict[str, str],
    ) -> PipelineConfig | None:
        body = self.mapping(value, path, _PIPELINE_KEYS, "a pipeline")
        if body is None:
            return None
        pipeline_id = self.slug(body.get("id"), join_key(path, "id"), "pipeline id")
        name = self.pipeline_name(body, path, pipeline_id)
        description = self.description(body, path)
        stages_path = join_key(path, "stages")
        if body.get("stages") is None:
            stages: tuple[StageConfig, ...] = tuple(StageConfig(name=stage) for stage in DEFAULT_STAGES)
        else:
            stages = self.stages(body["stages"], stages_path, resources, placements, pipeline_id or "?")
        if pipeline_id is None or name is None:
            return None
        return PipelineConfig(id=pipeline_id, name=name, description=description, stages=stages)

    def pipeline_name(self, body: Mapping[str, Any], path: str, pipeline_id: str | None) -> str | None:
        name_path = join_key(path, "name")
        low, high = PIPELINE_NAME_LENGTH
        rule = f"{low}-{high} characters, {NAME_CHARACTERS}"
        if body.get("name") is None:
            # The id is a fine default name whenever it also satisfies the name rule.
            if pipeline_id is None:
                return None
            if low <= len(pipeline_id) <= high and NAME_PATTERN.match(pipeline_id):
                return pipeline_id
            self.issue(
                name_path, f"is required: the id '{pipeline_id}' is not a valid pipeline name ({rule})"
            )
            return None
        name = self.text(body["name"], name_path)
        if name is None:
            return None
        if not (low <= len(name) <= high and NAME_PATTERN.match(name)):
            self.issue(name_path, f"'{name}' is not a valid pipeline name: {rule}")
            return None
        return name

    def stages(
        self,
        value: Any,
        path: str,
        resources: Mapping[str, ResourceConfig],
        placements: dict[str, str],
        pipeline_id: str,
    ) -> tuple[StageConfig, ...]:
        items = self.items(value, path)
        if isinstance(value, list) and not items:
            self.issue(path, "a pipeline needs at least one stage (omit 'stages' for the default three)")
        # Stage names are checked first so each release flow knows the stage before it.
        bodies: list[tuple[str, Mapping[str, Any], str | None]] = []
        seen: dict[str, tuple[str, str]] = {}
        for index, item in enumerate(items):
            item_path = join_index(path, index)
            body = self.mapping(item, item_path, _STAGE_KEYS, "a stage")
            if body is None:
                continue
            name = self.stage_name(body.get("name"), join_key(item_path, "name"))
            if name is not None:
                # Stage names end up in URLs in lower case (compat section 6), so case must not matter.
                folded = name.casefold()
                if folded in seen:
                    other_path, other_name = seen[folded]
                    self.issue(
                        join_key(item_path, "name"),
                        f"stage '{name}' is already defined at {other_path} ('{other_name}'); "
                        "stage names are unique per pipeline, ignoring case",
                    )
                    name = None
                else:
                    seen[folded] = (item_path, name)
            bodies.append((item_path, body, name))
        stages: list[StageConfig] = []
        previous: StageConfig | None = None
        for item_path, body, name in bodies:
            members = self.stage_resources(
                body.get("resources"),
                join_key(item_path, "resources"),
                resources,
                placements,
                pipeline_id,
                name,
            )
            stage = StageConfig(name=name or "?", resources=members)
            stage = self.release_flow(body, item_path, stage, previous, resources)
            if name is not None:
                stages.append(stage)
                previous = stage
        return tuple(stages)

    def stage_name(self, value: Any, path: str) -> str | None:
        if value is None:
            self.issue(path, "is required")
            return None
        name = self.text(value, path)
        if name is None:
            return None
        if not (len(name) <= STAGE_NAME_MAX_LENGTH and NAME_PATTERN.match(name)):
            self.issue(
                path,
                f"'{name}' is not a valid stage name: "
                f"up to {STAGE_NAME_MAX_LENGTH} characters, {NAME_CHARACTERS}",
            )
            return None
        return name

    def stage_resources(
        self,
        value: Any,
        path: str,
        resources: Mapping[str, ResourceConfig],
        placements: dict[str, str],
        pipeline_id: str,
        stage_name: str | None,
    ) -> tuple[str, ...]:
        members: list[str] = []
        for index, item in enumerate(self.items(value, path)):
            item_path = join_index(path, index)
            if not isinstance(item, str):
                self.issue(item_path, "must be a resource id (a string)")
                continue
            resource = resources.get(item)
            if resource is None:
                self.issue(item_path, f"no service, job or addon '{item}' in this project")
                continue
            if resource.kind not in STAGE_KINDS:
                self.issue(
                    item_path,
                    f"'{item}' is a build service; build services are never placed in a stage "
                    "(release flows can still use them)",
                )
                continue
            if item in placements:
                self.issue(
                    item_path,
                    f"'{item}' is already in {placements[item]}; a resource belongs to at most one stage",
                )
                continue
            placements[item] = f"pipeline {pipeline_id}, stage {stage_name or '?'}"
            members.append(item)
        return tuple(members)

    # -- release flows -----------------------------------------------------------------------------

    def release_flow(
        self,
        body: Mapping[str, Any],
        path: str,
        stage: StageConfig,
        previous: StageConfig | None,
        resources: Mapping[str, ResourceConfig],
    ) -> StageConfig:
        inline, file_name = body.get("releaseFlow"), body.get("releaseFlowFile")
        if inline is not None and file_name is not None:
            self.issue(path, "set releaseFlow or releaseFlowFile, not both")
            return stage
        if inline is not None:
            flow_path = join_key(path, "releaseFlow")
            if not isinstance(inline, Mapping):
                self.issue(flow_path, "must be a mapping (a release flow template)")
                return stage
            problems = self.check_flow(inline, stage, previous, resources)
            self.issues.extend(Issue(join_inner(flow_path, issue.path), issue.message) for issue in problems)
            return stage if problems else StageConfig(stage.name, stage.resources, inline)
        if file_name is not None:
            file_path = join_key(path, "releaseFlowFile")
            relative = self.flow_file_name(file_name, file_path)
            if relative is None:
                return stage
            loaded = self.load_flow_file(relative)
            problems = loaded.issues or self.check_flow(loaded.document, stage, previous, resources)
            # The issue sits at the key naming the file; its message carries the path inside the file.
            self.issues.extend(Issue(f"{file_path} ({relative})", str(issue)) for issue in problems)
            if problems:
                return stage
            return StageConfig(stage.name, stage.resources, loaded.document, release_flow_file=relative)
        return stage

    def flow_file_name(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str) or not value:
            self.issue(path, "must be a file path (a non-empty string)")
            return None
        if any(ord(character) < 32 or ord(character) == 127 for character in value):
            self.issue(path, f"{value!r}: a file path cannot hold control characters")
            return None
        if "\\" in value:
            self.issue(path, f"'{value}': use forward slashes in file paths")
            return None
        # Flow files live beside the configuration, so the folder can be moved or checked out anywhere.
        if value.startswith("/") or re.match(r"^[A-Za-z]:", value):
            self.issue(path, f"'{value}' must be relative to the configuration file's folder")
            return None
        normalised = posixpath.normpath(value)
        if normalised == ".." or normalised.startswith("../") or normalised == ".":
            self.issue(path, f"'{value}' must name a file inside the configuration file's folder")
            return None
        return normalised

    def load_flow_file(self, relative: str) -> _Loaded:
        if relative in self._files:
            return self._files[relative]
        loaded = _Loaded()
        try:
            text = self.read_file(relative)
        except FlowFileRefused as error:
            loaded.issues.append(Issue("", str(error)))
        except UnicodeDecodeError:
            loaded.issues.append(Issue("", "cannot read the file: it is not UTF-8 text"))
        except (OSError, ValueError) as error:
            # Whatever the file system says, it is one problem of the file among the others.
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            loaded.issues.append(Issue("", f"cannot read the file: {reason}"))
        else:
            try:
                loaded.document = load_document(text, source=relative)
            except ValidationError as error:
                loaded.issues.extend(error.issues)
        self._files[relative] = loaded
        return loaded

    def check_flow(
        self,
        document: Any,
        stage: StageConfig,
        previous: StageConfig | None,
        resources: Mapping[str, ResourceConfig],
    ) -> list[Issue]:
        """Issues of one release flow, with paths relative to the template document."""
        problems = json_issues(document, "")
        if problems:
            return problems
        try:
            template = parse_template(document)
        except ValidationError as error:
            return list(error.issues)
        return [*check_template(template, stage_scope(stage, previous, resources)), *check_refs(template)]


def stage_scope(
    stage: StageConfig, previous: StageConfig | None, resources: Mapping[str, ResourceConfig]
) -> StageScope:
    """What a stage's release flow may act on: its own services, jobs and addons, every build
    service of the project, and (for promotion) the services and jobs of the stage before it."""

    def of_kind(ids: Sequence[str], kind: ResourceKind) -> frozenset[str]:
        return frozenset(item for item in ids if item in resources and resources[item].kind == kind)

    build_services = frozenset(
        item for item, resource in resources.items() if resource.kind == "build_service"
    )
    return StageScope(
        stage=stage.name,
        services=of_kind(stage.resources, "service"),
        jobs=of_kind(stage.resources, "job"),
        addons=of_kind(stage.resources, "addon"),
        build_services=build_services,
        previous_stage=previous.name if previous is not None else None,
        previous_services=of_kind(previous.resources, "service") if previous is not None else frozenset(),
        previous_jobs=of_kind(previous.resources, "job") if previous is not None else frozenset(),
        drivers={item: resource.driver for item, resource in resources.items()},
    )

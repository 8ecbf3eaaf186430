"""Reconciliation: what ``apply`` must change so that the current state matches a configuration.

``plan_changes`` compares two ``Configuration`` values (the file, and what the store holds) and
lists one ``Change`` per project, resource, pipeline, stage and release flow it looks at. It is pure;
the caller carries the changes out, in the order given, which is safe to follow one by one:
per project, the project, then its resources, then deleted pipelines, then each pipeline with its
deleted stages first (freeing their resources) and its stages and release flows, and deleted
resources last (once no stage holds them).

Deletion rules (``docs/configuration.md``): without ``prune`` nothing is ever deleted; what the
store has and the file lacks is left alone and not mentioned. With ``prune``, inside each project the
file lists, resources and pipelines the file lacks are deleted, as are the stages a listed pipeline
lacks and the release flow of a listed stage that has none in the file. Projects are never deleted:
a project absent from the file is simply not managed by it.

What has history is archived instead of deleted: a release flow with runs, a stage or pipeline whose
flows have runs, a resource a run deployed to. Archived things leave lists and triggers and keep
their runs, flow versions and release state; a file that declares them again restores them. The
plan decides all of this (the apply only carries it out), so a dry run shows exactly what the apply
will do, refusals included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from releaseflow.domain.config_model import (
    KIND_WORDS,
    Configuration,
    PipelineConfig,
    ProjectConfig,
    ResourceConfig,
    StageConfig,
    join_index,
    join_key,
)
from releaseflow.domain.errors import ConflictError

Action = Literal["create", "update", "delete", "archive", "restore", "unchanged"]
SubjectKind = Literal["project", "resource", "pipeline", "stage", "release_flow"]

SUBJECT_WORDS: Mapping[SubjectKind, str] = {
    "project": "project",
    "resource": "resource",
    "pipeline": "pipeline",
    "stage": "stage",
    "release_flow": "release flow",
}
ACTION_SYMBOLS: Mapping[Action, str] = {
    "create": "+",
    "update": "~",
    "delete": "-",
    "archive": "-",
    "restore": "+",
    "unchanged": "=",
}
ARCHIVED = "archived: it has history, which stays readable"
RESTORED = "restored from the archive"
# How many changed paths a summary names before it says "and N more".
MAX_LISTED_PATHS = 3


@dataclass(frozen=True)
class Change:
    """One thing ``apply`` creates, updates, deletes or leaves as it is.

    ``desired`` is the object to store: a ``ProjectConfig``, ``ResourceConfig``, ``PipelineConfig``,
    ``StageConfig``, or for a release flow its template document; ``None`` for a deletion.
    """

    action: Action
    subject_kind: SubjectKind
    key: tuple[str, ...]
    summary: str
    desired: object | None = None

    @property
    def label(self) -> str:
        return f"{SUBJECT_WORDS[self.subject_kind]} {'/'.join(self.key)}"


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...] = ()

    @property
    def has_changes(self) -> bool:
        return any(change.action != "unchanged" for change in self.changes)

    def of(self, action: Action) -> tuple[Change, ...]:
        return tuple(change for change in self.changes if change.action == action)

    def outline(self) -> PlanOutline:
        return PlanOutline(
            tuple(
                OutlinedChange(change.action, change.label, change.summary)
                for change in self.changes
                if change.action != "unchanged"
            ),
            unchanged=len(self.of("unchanged")),
        )

    def render(self) -> str:
        return self.outline().render()


@dataclass(frozen=True)
class OutlinedChange:
    action: Action  # never "unchanged": an outline only counts those
    subject: str  # e.g. "release flow shop/main/Staging"
    summary: str


@dataclass(frozen=True)
class PlanOutline:
    """What ``apply`` shows of a plan: the changes in order, and how many things stay unchanged.

    It is what a server answers for an apply (``wire.configuration``), so the command line prints a
    plan made here or on a server with the same ``render``.
    """

    changes: tuple[OutlinedChange, ...]
    unchanged: int

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def render(self) -> str:
        """The lines ``apply`` prints: one per change, then how many things are unchanged."""
        lines = [f"{ACTION_SYMBOLS[change.action]} {change.summary}" for change in self.changes]
        if self.unchanged:
            lines.append(f"= {self.unchanged} unchanged")
        return "\n".join(lines) if lines else "nothing to change"


def plan_changes(desired: Configuration, current: Configuration, *, prune: bool = False) -> Plan:
    """Changes that turn ``current`` into ``desired``.

    Raises ``ConflictError`` when the result would put a resource in two stages: the file places it
    in a stage while a stage the file does not list (and which stays, as ``prune`` is off) holds it.
    """
    _check_placements(desired, current, prune=prune)
    changes: list[Change] = []
    for project in desired.projects:
        changes.extend(_project_changes(project, current.project(project.id), prune=prune))
    _check_unfinished_runs(changes, current)
    return Plan(tuple(changes))


def canonical_json(value: Any) -> str:
    """The one text of a document: two documents are the same version exactly when this is equal."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """Paths where two JSON documents differ, in document order, e.g. ``spec.image changed``."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found: list[str] = []
        for key in new:
            if key not in old:
                found.append(f"{join_key(path, str(key))} added")
            else:
                found.extend(changed_paths(old[key], new[key], join_key(path, str(key))))
        found.extend(f"{join_key(path, str(key))} removed" for key in old if key not in new)
        return found
    if isinstance(old, list) and isinstance(new, list):
        found = []
        for index in range(max(len(old), len(new))):
            if index >= len(old):
                found.append(f"{join_index(path, index)} added")
            elif index >= len(new):
                found.append(f"{join_index(path, index)} removed")
            else:
                found.extend(changed_paths(old[index], new[index], join_index(path, index)))
        return found
    if canonical_json(old) == canonical_json(new):
        return []
    return [f"{path or 'the whole document'} changed"]


def _describe_paths(paths: Sequence[str]) -> str:
    listed = ", ".join(paths[:MAX_LISTED_PATHS])
    more = len(paths) - MAX_LISTED_PATHS
    return f"{listed} and {more} more" if more > 0 else listed


def _change(
    action: Action, kind: SubjectKind, key: tuple[str, ...], detail: str, desired: object | None
) -> Change:
    label = f"{SUBJECT_WORDS[kind]} {'/'.join(key)}"
    return Change(action, kind, key, f"{label} ({detail})" if detail else label, desired)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# -- per subject ---------------------------------------------------------------------------------


def _project_changes(
    project: ProjectConfig, current: ProjectConfig | None, *, prune: bool
) -> Iterator[Change]:
    key = (project.id,)
    if current is None:
        yield _change("create", "project", key, project.name, project)
        empty = ProjectConfig(id=project.id, name=project.name)
        yield from _contents_changes(project, empty, prune=False)
        return
    differences = []
    if project.name != current.name:
        differences.append(f"name '{current.name}' -> '{project.name}'")
    if project.description != current.description:
        differences.append("description changed")
    if differences:
        yield _change("update", "project", key, "; ".join(differences), project)
    else:
        yield _change("unchanged", "project", key, "unchanged", project)
    yield from _contents_changes(project, current, prune=prune)


def _contents_changes(project: ProjectConfig, current: ProjectConfig, *, prune: bool) -> Iterator[Change]:
    for resource in project.resources:
        yield _resource_change(project.id, resource, current.resource(resource.id))
    if prune:
        for pipeline in current.pipelines:
            if project.pipeline(pipeline.id) is None and not pipeline.archived:
                live = [stage for stage in pipeline.stages if not stage.archived]
                flows = sum(1 for stage in live if stage.release_flow is not None)
                detail = f"with its {_plural(len(live), 'stage')} and {_plural(flows, 'release flow')}"
                action: Action = "delete"
                if pipeline.has_runs:
                    action, detail = "archive", f"{detail}; {ARCHIVED} (runs)"
                yield _change(action, "pipeline", (project.id, pipeline.id), detail, None)
    for pipeline in project.pipelines:
        yield from _pipeline_changes(project.id, pipeline, current.pipeline(pipeline.id), prune=prune)
    if prune:
        for resource in current.resources:
            if project.resource(resource.id) is None and not resource.archived:
                detail = f"{KIND_WORDS[resource.kind]}, {resource.driver}"
                if resource.has_history:
                    detail = f"{detail}; {ARCHIVED} (deployments)"
                yield _change(
                    "archive" if resource.has_history else "delete",
                    "resource",
                    (project.id, resource.id),
                    detail,
                    None,
                )


def _resource_change(project_id: str, resource: ResourceConfig, current: ResourceConfig | None) -> Change:
    key = (project_id, resource.id)
    if current is None:
        return _change("create", "resource", key, f"{KIND_WORDS[resource.kind]}, {resource.driver}", resource)
    differences = []
    if resource.kind != current.kind:
        differences.append(f"kind {KIND_WORDS[current.kind]} -> {KIND_WORDS[resource.kind]}")
    if resource.driver != current.driver:
        differences.append(f"driver {current.driver} -> {resource.driver}")
    if canonical_json(resource.spec) != canonical_json(current.spec):
        differences.append(_describe_paths(changed_paths(current.spec, resource.spec, "spec")))
    if current.archived:
        return _change("restore", "resource", key, "; ".join([RESTORED, *differences]), resource)
    if differences:
        return _change("update", "resource", key, "; ".join(differences), resource)
    return _change("unchanged", "resource", key, "unchanged", resource)


def _pipeline_changes(
    project_id: str, pipeline: PipelineConfig, current: PipelineConfig | None, *, prune: bool
) -> Iterator[Change]:
    key = (project_id, pipeline.id)
    if current is None:
        detail = f"{pipeline.name}, {_plural(len(pipeline.stages), 'stage')}"
        yield _change("create", "pipeline", key, detail, pipeline)
        current = PipelineConfig(id=pipeline.id, name=pipeline.name)
    else:
        yield _pipeline_change(key, pipeline, current)
    if prune:
        for stage in current.stages:
            if pipeline.stage(stage.name) is None and not stage.archived:
                detail = "with its release flow" if stage.release_flow is not None else ""
                if stage.has_runs:
                    yield _change(
                        "archive", "stage", (*key, stage.name), f"{detail}; {ARCHIVED} (runs)", None
                    )
                else:
                    yield _change("delete", "stage", (*key, stage.name), detail, None)
    for stage in pipeline.stages:
        yield from _stage_changes(key, stage, current.stage(stage.name), prune=prune)


def _pipeline_change(key: tuple[str, ...], pipeline: PipelineConfig, current: PipelineConfig) -> Change:
    differences = []
    if pipeline.name != current.name:
        differences.append(f"name '{current.name}' -> '{pipeline.name}'")
    if pipeline.description != current.description:
        differences.append("description changed")
    # Only the relative order of stages present in both counts: new and left-alone stages do not
    # make an order change by themselves.
    wanted = [stage.name for stage in pipeline.stages]
    held = [stage.name for stage in current.stages if not stage.archived]
    wanted_order = [name for name in wanted if name in held]
    held_order = [name for name in held if name in wanted]
    if wanted_order != held_order:
        differences.append(f"stage order {', '.join(held_order)} -> {', '.join(wanted_order)}")
    if current.archived:
        return _change("restore", "pipeline", key, "; ".join([RESTORED, *differences]), pipeline)
    if differences:
        return _change("update", "pipeline", key, "; ".join(differences), pipeline)
    return _change("unchanged", "pipeline", key, "unchanged", pipeline)


def _stage_changes(
    pipeline_key: tuple[str, ...], stage: StageConfig, current: StageConfig | None, *, prune: bool
) -> Iterator[Change]:
    key = (*pipeline_key, stage.name)
    members = ", ".join(stage.resources) if stage.resources else "no resources"
    if current is None:
        yield _change("create", "stage", key, members, stage)
    elif current.archived:
        yield _change("restore", "stage", key, f"{RESTORED}; {members}", stage)
    else:
        # Membership is a set: listing the same resources in another order changes nothing.
        added = [item for item in stage.resources if item not in current.resources]
        removed = [item for item in current.resources if item not in stage.resources]
        if added or removed:
            detail = "resources " + " ".join(
                [*(f"+{item}" for item in added), *(f"-{item}" for item in removed)]
            )
            yield _change("update", "stage", key, detail, stage)
        else:
            yield _change("unchanged", "stage", key, "unchanged", stage)
    held = current.release_flow if current is not None else None
    archived = current is not None and (current.archived or current.flow_archived)
    if stage.release_flow is None:
        if held is not None and prune and not archived:
            if current is not None and current.has_runs:
                yield _change("archive", "release_flow", key, f"{ARCHIVED} (runs)", None)
            else:
                yield _change("delete", "release_flow", key, "", None)
        return
    if held is None:
        yield _change("create", "release_flow", key, "first version", stage.release_flow)
    elif archived:
        changed = canonical_json(held) != canonical_json(stage.release_flow)
        detail = f"new version: {_describe_paths(changed_paths(held, stage.release_flow))}" if changed else ""
        yield _change(
            "restore", "release_flow", key, "; ".join(filter(None, [RESTORED, detail])), stage.release_flow
        )
    elif canonical_json(held) != canonical_json(stage.release_flow):
        paths = _describe_paths(changed_paths(held, stage.release_flow))
        yield _change("update", "release_flow", key, f"new version: {paths}", stage.release_flow)
    else:
        yield _change("unchanged", "release_flow", key, "unchanged", stage.release_flow)


def _check_unfinished_runs(changes: Sequence[Change], current: Configuration) -> None:
    """Refuse to archive a release flow whose runs have not ended: they would lose their stage."""
    problems: list[str] = []
    for change in changes:
        if change.action != "archive" or change.subject_kind == "resource":
            continue
        project = current.project(change.key[0])
        pipeline = project.pipeline(change.key[1]) if project is not None else None
        if pipeline is None:
            continue
        names = change.key[2:] or tuple(stage.name for stage in pipeline.stages)
        for name in names:
            stage = pipeline.stage(name)
            if stage is not None and stage.unfinished_runs:
                runs = _plural(stage.unfinished_runs, "run")
                problems.append(
                    f"{change.label}: release flow {'/'.join(change.key[:2])}/{name} has {runs} not"
                    " ended yet; wait for them or abort them, then apply again"
                )
    if problems:
        raise ConflictError(
            "cannot archive what is still running:\n" + "\n".join(f"  {line}" for line in problems)
        )


def _check_placements(desired: Configuration, current: Configuration, *, prune: bool) -> None:
    """Refuse a plan whose result puts one resource in two stages (see ``plan_changes``)."""
    if prune:
        # Every stage of a listed project is then either in the file or deleted.
        return
    problems: list[str] = []
    for project in desired.projects:
        held = current.project(project.id)
        if held is None:
            continue
        placed = {
            item: f"{pipeline.id}/{stage.name}"
            for pipeline in project.pipelines
            for stage in pipeline.stages
            for item in stage.resources
        }
        for pipeline in held.pipelines:
            listed = project.pipeline(pipeline.id)
            for stage in pipeline.stages:
                if stage.archived or (listed is not None and listed.stage(stage.name) is not None):
                    continue
                for item in stage.resources:
                    if item in placed:
                        problems.append(
                            f"resource {project.id}/{item} is placed in stage {project.id}/{placed[item]}, "
                            f"but stage {project.id}/{pipeline.id}/{stage.name} holds it and is not in the "
                            "file; remove it from that stage, or apply with prune to delete that stage"
                        )
    if problems:
        raise ConflictError(
            "a resource would be in two stages:\n" + "\n".join(f"  {line}" for line in problems)
        )

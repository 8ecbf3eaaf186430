"""Reading the release state and its history: stages side by side, and a stage's timeline (pure).

Stages of a pipeline hold different services and jobs (``web-dev`` in Development, ``web`` in
Production), so comparing them needs to know which resource of one stage is which of another. The
release flows say it: a Release node of type ``deployment`` promotes its ``origin`` onto its
``target``. Resources linked by promotions, directly or through a chain, form one **lineage**; the
side-by-side view has a row per lineage and a column per stage. Only promotions between resources of
one kind link them: a job promoted from a service (to run a migration from the service's build) is
the job's own lineage, not the service's. A resource no promotion names is a lineage of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any


@dataclass(frozen=True)
class Deployed:
    """What one service or job runs: the artifact, since when, and the run that put it there."""

    resource_id: str
    artifact: Mapping[str, Any]
    run_id: str
    deployed_at: datetime | None


def artifact_key(artifact: Mapping[str, Any] | None) -> str | None:
    """What makes two artifacts the same thing running: the image, else the commit, else the build."""
    if not artifact:
        return None
    if artifact.get("kind") == "image" and artifact.get("image"):
        return f"image:{artifact['image']}"
    if artifact.get("commit"):
        return f"commit:{artifact['commit']}"
    return f"build:{artifact.get('buildService')}:{artifact.get('buildId')}"


@dataclass(frozen=True)
class Cell:
    """One lineage in one stage: its resources there and what each runs (None: nothing yet)."""

    stage: str
    resources: tuple[tuple[str, Deployed | None], ...]

    @property
    def keys(self) -> frozenset[str | None]:
        return frozenset(
            artifact_key(deployed.artifact if deployed else None) for _, deployed in self.resources
        )


@dataclass(frozen=True)
class Lineage:
    """A row of the side-by-side view: a service or job as it exists in each stage."""

    cells: tuple[Cell, ...]

    @property
    def label(self) -> str:
        # Named by its last stage's resource: the one that reaches users.
        for cell in reversed(self.cells):
            if cell.resources:
                return cell.resources[0][0]
        return "?"

    def cell(self, stage: str) -> Cell:
        return next(cell for cell in self.cells if cell.stage == stage)


@dataclass(frozen=True)
class StageDifference:
    """Two neighbouring stages, and the lineages whose artifacts differ between them."""

    left: str
    right: str
    differing: tuple[str, ...]  # lineage labels
    compared: int  # lineages with a service or job in both stages

    @property
    def same(self) -> bool:
        return not self.differing


@dataclass(frozen=True)
class StageComparison:
    stages: tuple[str, ...]
    lineages: tuple[Lineage, ...]
    differences: tuple[StageDifference, ...]


def promotion_links(documents: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(origin, target) of every promoting Release node (type ``deployment``) of these flow documents."""
    links: list[tuple[str, str]] = []

    def visit(node: Any) -> None:
        if not isinstance(node, Mapping):
            return
        spec = node.get("spec")
        if not isinstance(spec, Mapping):
            return
        if node.get("kind") == "Release" and spec.get("type") == "deployment":
            origin, target = _id(spec.get("origin")), _id(spec.get("target"))
            if origin is not None and target is not None:
                links.append((origin, target))
        for step in spec.get("steps") or () if node.get("kind") == "Workflow" else ():
            visit(step)

    for document in documents:
        visit(document.get("spec"))
    return links


def _id(value: Any) -> str | None:
    found = value.get("id") if isinstance(value, Mapping) else None
    return found if isinstance(found, str) else None


def compare_stages(
    stages: Sequence[str],
    resources: Mapping[str, Sequence[str]],
    links: Iterable[tuple[str, str]],
    state: Mapping[str, Deployed],
    kinds: Mapping[str, str] | None = None,
) -> StageComparison:
    """The stages side by side. ``resources``: the services and jobs of each stage; ``state``: what
    each resource runs, by resource id; ``links``: promotions (origin, target) between resources;
    ``kinds``: each resource's kind (service, job), when known."""
    kinds = kinds or {}
    stage_of = {resource: stage for stage in stages for resource in resources.get(stage, ())}
    parent = {resource: resource for resource in stage_of}

    def root(resource: str) -> str:
        while parent[resource] != resource:
            parent[resource] = parent[parent[resource]]
            resource = parent[resource]
        return resource

    for origin, target in links:
        if origin in parent and target in parent and kinds.get(origin) == kinds.get(target):
            parent[root(target)] = root(origin)
    groups: dict[str, list[str]] = {}
    for resource in stage_of:  # stage order, then each stage's own order
        groups.setdefault(root(resource), []).append(resource)
    lineages = tuple(
        Lineage(
            tuple(
                Cell(
                    stage,
                    tuple(
                        (resource, state.get(resource)) for resource in members if stage_of[resource] == stage
                    ),
                )
                for stage in stages
            )
        )
        for members in groups.values()
    )
    differences = []
    for left, right in pairwise(stages):
        shared = [
            lineage for lineage in lineages if lineage.cell(left).resources and lineage.cell(right).resources
        ]
        differing = tuple(
            lineage.label for lineage in shared if lineage.cell(left).keys != lineage.cell(right).keys
        )
        differences.append(StageDifference(left, right, differing, len(shared)))
    return StageComparison(tuple(stages), lineages, tuple(differences))


@dataclass(frozen=True)
class HistoryEntry:
    """One row of a stage's release history (a successful deploy)."""

    id: int
    resource_id: str
    artifact: Mapping[str, Any]
    run_id: str
    node_path: str
    deployed_at: datetime | None


@dataclass(frozen=True)
class StateChange:
    """A deploy, with what its target ran before it (None: nothing, its first deploy)."""

    entry: HistoryEntry
    previous: Mapping[str, Any] | None

    @property
    def changed(self) -> bool:
        """False when the deploy put back the artifact that already ran (a redeploy)."""
        return artifact_key(self.previous) != artifact_key(self.entry.artifact)

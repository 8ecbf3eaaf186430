"""Reconciliation plans (``releaseflow.domain.config_plan``)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from releaseflow.domain.config import (
    Configuration,
    PipelineConfig,
    ProjectConfig,
    ResourceConfig,
    StageConfig,
    parse_configuration,
)
from releaseflow.domain.config_plan import Change, Plan, canonical_json, changed_paths, plan_changes
from releaseflow.domain.documents import load_document
from releaseflow.domain.errors import ConflictError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "config"


def read_fixture(path: str) -> str:
    return (FIXTURES / path).read_text(encoding="utf-8")


def example() -> Configuration:
    document = load_document(read_fixture("example.yaml"), source="example.yaml")
    return parse_configuration(document, read_file=read_fixture, source="example.yaml")


def flow(target: str) -> dict[str, Any]:
    step = {
        "kind": "Release",
        "spec": {
            "type": "registry",
            "origin": {"imagePath": "img:1"},
            "target": {"id": target, "type": "service"},
        },
    }
    return {
        "apiVersion": "v1.2",
        "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": [step]}},
    }


def shop(
    *,
    resources: tuple[ResourceConfig, ...] | None = None,
    stages: tuple[StageConfig, ...] | None = None,
    pipelines: tuple[PipelineConfig, ...] | None = None,
) -> ProjectConfig:
    """A small project: services api and web, a job, one pipeline 'main' with two stages."""
    if resources is None:
        resources = (
            ResourceConfig("api", "service", spec={"port": 8080}),
            ResourceConfig("web", "service"),
            ResourceConfig("migrate", "job"),
        )
    if stages is None:
        stages = (
            StageConfig("Staging", ("web",)),
            StageConfig("Production", ("api", "migrate"), flow("api")),
        )
    if pipelines is None:
        pipelines = (PipelineConfig("main", "Main", "", stages),)
    return ProjectConfig("shop", "Shop", "", resources, pipelines)


def actions(plan: Plan) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(change.action, change.subject_kind, change.key) for change in plan.changes]


def changed(plan: Plan) -> list[tuple[str, str, tuple[str, ...]]]:
    return [item for item in actions(plan) if item[0] != "unchanged"]


# -- whole plans ---------------------------------------------------------------------------------


def test_plan_changes__against_empty_current_creates_everything_in_a_safe_order() -> None:
    plan = plan_changes(Configuration((shop(),)), Configuration())

    assert actions(plan) == [
        ("create", "project", ("shop",)),
        ("create", "resource", ("shop", "api")),
        ("create", "resource", ("shop", "web")),
        ("create", "resource", ("shop", "migrate")),
        ("create", "pipeline", ("shop", "main")),
        ("create", "stage", ("shop", "main", "Staging")),
        ("create", "stage", ("shop", "main", "Production")),
        ("create", "release_flow", ("shop", "main", "Production")),
    ]
    assert plan.has_changes
    assert plan.changes[1].desired == ResourceConfig("api", "service", spec={"port": 8080})
    assert plan.changes[-1].desired == flow("api")


def test_plan_changes__example_against_empty_current_creates_every_part() -> None:
    configuration = example()

    plan = plan_changes(configuration, Configuration())

    counts = {kind: 0 for kind in ("project", "resource", "pipeline", "stage", "release_flow")}
    for change in plan.changes:
        assert change.action == "create"
        counts[change.subject_kind] += 1
    assert counts == {"project": 1, "resource": 8, "pipeline": 2, "stage": 6, "release_flow": 3}


def test_plan_changes__configuration_against_itself_is_all_unchanged() -> None:
    configuration = example()

    plan = plan_changes(configuration, copy.deepcopy(configuration), prune=True)

    assert {change.action for change in plan.changes} == {"unchanged"}
    assert len(plan.changes) == 1 + 8 + 2 + 6 + 3
    assert not plan.has_changes
    assert plan.render() == "= 20 unchanged"


def test_plan_changes__applying_the_plan_twice_changes_nothing_the_second_time() -> None:
    desired = Configuration((shop(),))
    first = plan_changes(desired, Configuration())
    assert first.has_changes

    # After apply, the store holds exactly what the file says.
    second = plan_changes(desired, desired)

    assert not second.has_changes


def test_plan_changes__empty_file_plans_nothing() -> None:
    plan = plan_changes(Configuration(), Configuration((shop(),)), prune=True)

    assert plan.changes == ()
    assert plan.render() == "nothing to change"


# -- updates -------------------------------------------------------------------------------------


def test_plan_changes__changed_flow_is_a_new_version() -> None:
    current = Configuration((shop(),))
    stages = (
        StageConfig("Staging", ("web",)),
        StageConfig("Production", ("api", "migrate"), flow("migrate")),
    )
    desired = Configuration((shop(stages=stages),))

    plan = plan_changes(desired, current)

    assert changed(plan) == [("update", "release_flow", ("shop", "main", "Production"))]
    (update,) = plan.of("update")
    assert update.summary == (
        "release flow shop/main/Production (new version: spec.spec.steps[0].spec.target.id changed)"
    )
    assert update.desired == flow("migrate")


def test_plan_changes__flow_compared_by_content_not_key_order() -> None:
    reordered = dict(reversed(list(flow("api").items())))
    stages = (StageConfig("Staging", ("web",)), StageConfig("Production", ("api", "migrate"), reordered))

    plan = plan_changes(Configuration((shop(stages=stages),)), Configuration((shop(),)))

    assert not plan.has_changes


def test_plan_changes__first_flow_of_a_stage_is_created() -> None:
    current_stages = (StageConfig("Staging", ("web",)), StageConfig("Production", ("api", "migrate")))

    plan = plan_changes(Configuration((shop(),)), Configuration((shop(stages=current_stages),)))

    assert changed(plan) == [("create", "release_flow", ("shop", "main", "Production"))]
    assert plan.of("create")[0].summary == "release flow shop/main/Production (first version)"


def test_plan_changes__resource_spec_and_driver_changes_are_updates() -> None:
    resources = (
        ResourceConfig("api", "service", "docker", {"port": 9090, "image": "api:2"}),
        ResourceConfig("web", "service"),
        ResourceConfig("migrate", "job"),
    )

    plan = plan_changes(Configuration((shop(resources=resources),)), Configuration((shop(),)))

    assert changed(plan) == [("update", "resource", ("shop", "api"))]
    assert plan.of("update")[0].summary == (
        "resource shop/api (driver local -> docker; spec.port changed, spec.image added)"
    )


def test_plan_changes__resource_kind_change_is_an_update_that_says_so() -> None:
    resources = (
        ResourceConfig("api", "service", spec={"port": 8080}),
        ResourceConfig("web", "service"),
        ResourceConfig("migrate", "service"),
    )

    plan = plan_changes(Configuration((shop(resources=resources),)), Configuration((shop(),)))

    assert [change.summary for change in plan.of("update")] == ["resource shop/migrate (kind job -> service)"]


def test_plan_changes__stage_membership_change_is_a_stage_update() -> None:
    stages = (StageConfig("Staging", ()), StageConfig("Production", ("api", "migrate", "web"), flow("api")))

    plan = plan_changes(Configuration((shop(stages=stages),)), Configuration((shop(),)))

    assert [change.summary for change in plan.of("update")] == [
        "stage shop/main/Staging (resources -web)",
        "stage shop/main/Production (resources +web)",
    ]


def test_plan_changes__order_of_resources_in_a_stage_does_not_matter() -> None:
    stages = (StageConfig("Staging", ("web",)), StageConfig("Production", ("migrate", "api"), flow("api")))

    plan = plan_changes(Configuration((shop(stages=stages),)), Configuration((shop(),)))

    assert not plan.has_changes


def test_plan_changes__stage_order_change_is_a_pipeline_update() -> None:
    stages = (StageConfig("Production", ("api", "migrate"), flow("api")), StageConfig("Staging", ("web",)))

    plan = plan_changes(Configuration((shop(stages=stages),)), Configuration((shop(),)))

    assert [change.summary for change in plan.of("update")] == [
        "pipeline shop/main (stage order Staging, Production -> Production, Staging)"
    ]


def test_plan_changes__project_and_pipeline_renames_are_updates() -> None:
    project = shop()
    pipeline = dataclasses.replace(project.pipelines[0], name="Main line", description="All of it")
    desired = dataclasses.replace(project, name="The shop", pipelines=(pipeline,))

    plan = plan_changes(Configuration((desired,)), Configuration((project,)))

    assert [change.summary for change in plan.of("update")] == [
        "project shop (name 'Shop' -> 'The shop')",
        "pipeline shop/main (name 'Main' -> 'Main line'; description changed)",
    ]


# -- what is absent from the file -----------------------------------------------------------------


def current_with_extras() -> Configuration:
    """The store holds more than the file: a resource, a pipeline, a stage, a flow, a project."""
    resources = (*shop().resources, ResourceConfig("worker", "job", "docker"))
    stages = (
        StageConfig("Staging", ("web",), flow("web")),
        StageConfig("QA", (), flow("api")),
        StageConfig("Production", ("api", "migrate"), flow("api")),
    )
    legacy = PipelineConfig("legacy", "Legacy", "", (StageConfig("Production", ("worker",)),))
    pipelines = (PipelineConfig("main", "Main", "", stages), legacy)
    blog = ProjectConfig("blog", "Blog", "", (ResourceConfig("site", "service"),))
    return Configuration((shop(resources=resources, pipelines=pipelines), blog))


def test_plan_changes__without_prune_what_the_file_lacks_is_left_alone() -> None:
    plan = plan_changes(Configuration((shop(),)), current_with_extras())

    assert changed(plan) == []
    assert all("worker" not in change.key and "legacy" not in change.key for change in plan.changes)
    assert all(change.key[0] == "shop" for change in plan.changes)


def test_plan_changes__prune_deletes_inside_listed_projects_only() -> None:
    plan = plan_changes(Configuration((shop(),)), current_with_extras(), prune=True)

    assert changed(plan) == [
        ("delete", "pipeline", ("shop", "legacy")),
        ("delete", "stage", ("shop", "main", "QA")),
        ("delete", "release_flow", ("shop", "main", "Staging")),
        ("delete", "resource", ("shop", "worker")),
    ]
    assert all(change.desired is None for change in plan.of("delete"))
    assert "blog" not in {change.key[0] for change in plan.changes}


def test_plan_changes__render_lists_changes_then_the_unchanged_count() -> None:
    desired_resources = (*shop().resources, ResourceConfig("cache", "addon", "docker"))
    stages = (StageConfig("Staging", ("web",)), StageConfig("Production", ("api", "migrate"), flow("web")))
    desired = Configuration((shop(resources=desired_resources, stages=stages),))

    plan = plan_changes(desired, current_with_extras(), prune=True)

    assert plan.render() == "\n".join(
        [
            "+ resource shop/cache (addon, docker)",
            "- pipeline shop/legacy (with its 1 stage and 0 release flows)",
            "- stage shop/main/QA (with its release flow)",
            "- release flow shop/main/Staging",
            "~ release flow shop/main/Production (new version: spec.spec.steps[0].spec.target.id changed)",
            "- resource shop/worker (job, docker)",
            "= 7 unchanged",
        ]
    )


def test_plan_changes__resource_held_by_a_stage_left_alone_is_a_conflict() -> None:
    # The file moves 'worker' into Staging, but the legacy pipeline (not in the file) still holds it.
    resources = (*shop().resources, ResourceConfig("worker", "job", "docker"))
    stages = (
        StageConfig("Staging", ("web", "worker")),
        StageConfig("Production", ("api", "migrate"), flow("api")),
    )
    desired = Configuration((shop(resources=resources, stages=stages),))

    with pytest.raises(ConflictError) as caught:
        plan_changes(desired, current_with_extras())

    assert str(caught.value) == (
        "a resource would be in two stages:\n"
        "  resource shop/worker is placed in stage shop/main/Staging, but stage shop/legacy/Production "
        "holds it and is not in the file; remove it from that stage, or apply with prune to delete that stage"
    )
    # With prune the legacy pipeline goes, so the move is fine.
    plan = plan_changes(desired, current_with_extras(), prune=True)
    assert ("delete", "pipeline", ("shop", "legacy")) in changed(plan)
    assert ("update", "stage", ("shop", "main", "Staging")) in changed(plan)


# -- helpers -------------------------------------------------------------------------------------


def test_canonical_json__ignores_key_order_and_keeps_unicode() -> None:
    assert canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'


def test_changed_paths__names_added_removed_and_changed_places() -> None:
    old = {"a": 1, "b": {"c": [1, 2, 3]}, "d": True}
    new = {"a": 1, "b": {"c": [1, 5]}, "e": None, "d": 1}

    assert changed_paths(old, new) == ["b.c[1] changed", "b.c[2] removed", "e added", "d changed"]


def test_plan__render_counts_only_unchanged_when_nothing_changes() -> None:
    plan = Plan((Change("unchanged", "project", ("shop",), "project shop (unchanged)"),))

    assert not plan.has_changes
    assert plan.render() == "= 1 unchanged"


# -- history: archive instead of delete, restore on declaring again ------------------------------


def test_plan_changes__pruning_what_has_history_archives_it() -> None:
    current = shop(
        resources=(
            ResourceConfig("api", "service", spec={"port": 8080}),
            ResourceConfig("web", "service", has_history=True),
            ResourceConfig("migrate", "job"),
            ResourceConfig("old", "job"),
        ),
        stages=(
            StageConfig("Staging", ("web",), flow("web"), has_runs=True),
            StageConfig("Production", ("api", "migrate"), flow("api"), has_runs=True),
        ),
    )
    desired = shop(
        resources=(ResourceConfig("api", "service", spec={"port": 8080}), ResourceConfig("migrate", "job")),
        stages=(StageConfig("Production", ("api", "migrate")),),
    )

    plan = plan_changes(Configuration((desired,)), Configuration((current,)), prune=True)

    assert changed(plan) == [
        ("archive", "stage", ("shop", "main", "Staging")),
        ("archive", "release_flow", ("shop", "main", "Production")),
        ("archive", "resource", ("shop", "web")),
        ("delete", "resource", ("shop", "old")),
    ]


def test_plan_changes__archived_things_are_not_pruned_again_and_are_restored_when_declared() -> None:
    current = shop(
        resources=(
            ResourceConfig("api", "service", spec={"port": 8080}),
            ResourceConfig("web", "service", archived=True, has_history=True),
            ResourceConfig("migrate", "job"),
        ),
        stages=(
            StageConfig("Staging", (), flow("web"), archived=True, has_runs=True),
            StageConfig("Production", ("api", "migrate"), flow("api"), flow_archived=True, has_runs=True),
        ),
    )

    pruned = plan_changes(
        Configuration(
            (shop(resources=current.resources[::2], stages=(StageConfig("Production", ("api", "migrate")),)),)
        ),
        Configuration((current,)),
        prune=True,
    )
    restored = plan_changes(Configuration((shop(),)), Configuration((current,)))

    assert not pruned.has_changes
    assert changed(restored) == [
        ("restore", "resource", ("shop", "web")),
        # The file declares the stage without a flow: its archived flow stays archived.
        ("restore", "stage", ("shop", "main", "Staging")),
        ("restore", "release_flow", ("shop", "main", "Production")),
    ]

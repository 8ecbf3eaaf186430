"""Parsing and validating configuration files (``releaseflow.domain.config``)."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from releaseflow.domain.config import (
    Configuration,
    ResourceConfig,
    StageConfig,
    parse_configuration,
    stage_scope,
)
from releaseflow.domain.documents import load_document
from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.template_parser import parse_template
from releaseflow.domain.template_rules import check_refs, check_template

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "config"
SLUG_RULE = (
    "use 1-63 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen"
)
NAME_CHARACTERS = "starting with a letter; letters and digits, with single spaces or hyphens between them"


def read_fixture(path: str) -> str:
    return (FIXTURES / path).read_text(encoding="utf-8")


def example_document() -> Any:
    return load_document(read_fixture("example.yaml"), source="example.yaml")


def files(contents: dict[str, str]) -> Callable[[str], str]:
    """A ``read_file`` over an in-memory folder; a missing name raises like the real one."""

    def read(path: str) -> str:
        if path not in contents:
            raise FileNotFoundError(2, "No such file or directory", path)
        return contents[path]

    return read


def no_files(path: str) -> str:
    raise AssertionError(f"no file should be read, got {path}")


def flow(*steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1.2",
        "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": list(steps)}},
    }


def release(target: str, ref: str = "deploy") -> dict[str, Any]:
    return {
        "kind": "Release",
        "ref": ref,
        "spec": {
            "type": "registry",
            "origin": {"imagePath": "registry.example.com/shop/api:1.0"},
            "target": {"id": target, "type": "service"},
        },
    }


def small(**stage: Any) -> dict[str, Any]:
    """A one-project document whose first pipeline has one stage built from ``stage``."""
    return {
        "projects": [
            {
                "id": "shop",
                "resources": {
                    # Image releases need a container driver.
                    "services": [{"id": "api", "driver": "docker"}, {"id": "web", "driver": "docker"}],
                    "jobs": [{"id": "migrate"}],
                    "addons": [{"id": "db"}],
                    "buildServices": [{"id": "builder"}],
                },
                "pipelines": [{"id": "main", "stages": [{"name": "Production", **stage}]}],
            }
        ]
    }


def issues_of(document: Any, read_file: Callable[[str], str] = no_files) -> list[Issue]:
    with pytest.raises(ValidationError) as caught:
        parse_configuration(document, read_file=read_file, source="shop.yaml")
    return list(caught.value.issues)


def only_issue(document: Any, read_file: Callable[[str], str] = no_files) -> Issue:
    issues = issues_of(document, read_file)
    assert len(issues) == 1, issues
    return issues[0]


def template_issues(document: Any, stage: StageConfig, resources: list[ResourceConfig]) -> list[Issue]:
    """What the template modules themselves say about a flow, for comparing paths and messages."""
    try:
        template = parse_template(document)
    except ValidationError as error:
        return list(error.issues)
    scope = stage_scope(stage, None, {resource.id: resource for resource in resources})
    return [*check_template(template, scope), *check_refs(template)]


# -- the example --------------------------------------------------------------------------------


def test_parse_configuration__example_parses() -> None:
    configuration = parse_configuration(example_document(), read_file=read_fixture, source="example.yaml")

    (shop,) = configuration.projects
    assert (shop.id, shop.name, shop.description) == ("shop", "Shop", "The web shop and its API")
    kinds = {resource.id: (resource.kind, resource.driver) for resource in shop.resources}
    assert kinds == {
        "api-dev": ("service", "local"),
        "api-staging": ("service", "local"),
        "api": ("service", "local"),
        "migrate-staging": ("job", "local"),
        "migrate": ("job", "local"),
        "db-staging": ("addon", "local"),
        "db": ("addon", "local"),
        "api-builder": ("build_service", "local"),
    }
    assert shop.resource("api") == ResourceConfig(
        id="api",
        kind="service",
        driver="local",
        spec={"command": ["python", "-m", "shop.api", "--port", "8080"], "port": 8080},
    )
    main, _experiments = shop.pipelines
    assert [(stage.name, stage.resources) for stage in main.stages] == [
        ("Development", ("api-dev",)),
        ("Staging", ("api-staging", "migrate-staging", "db-staging")),
        ("Production", ("api", "migrate", "db")),
    ]
    development, staging, production = main.stages
    assert development.release_flow is not None and development.release_flow_file is None
    assert development.release_flow["spec"]["spec"]["steps"][1]["spec"]["target"]["id"] == "api-dev"
    assert staging.release_flow == load_document(read_fixture("flows/staging.yaml"), source="staging")
    assert staging.release_flow_file == "flows/staging.yaml"
    assert production.release_flow_file == "flows/production.yaml"


def test_parse_configuration__pipeline_without_stages_gets_the_default_three() -> None:
    configuration = parse_configuration(example_document(), read_file=read_fixture)

    experiments = configuration.projects[0].pipelines[1]
    assert (experiments.id, experiments.name, experiments.description) == ("experiments", "Experiments", "")
    assert experiments.stages == (
        StageConfig("Development"),
        StageConfig("Staging"),
        StageConfig("Production"),
    )


def test_parse_configuration__names_default_to_ids() -> None:
    document = {"projects": [{"id": "shop", "pipelines": [{"id": "main"}]}]}

    configuration = parse_configuration(document, read_file=no_files)

    assert configuration.projects[0].name == "shop"
    assert configuration.projects[0].pipelines[0].name == "main"


def test_parse_configuration__empty_project_list_is_valid() -> None:
    assert parse_configuration({"projects": []}, read_file=no_files) == Configuration(())


def test_parse_configuration__flow_file_path_is_normalised_and_read_once() -> None:
    document = small(releaseFlowFile="./flows/../flows/prod.yaml")
    document["projects"][0]["pipelines"].append(
        {
            "id": "other",
            "stages": [{"name": "Production", "resources": [], "releaseFlowFile": "flows/prod.yaml"}],
        }
    )
    asked: list[str] = []

    def read(path: str) -> str:
        asked.append(path)
        return "apiVersion: v1.2\nspec: {kind: Workflow, spec: {type: sequential, steps: []}}\n"

    configuration = parse_configuration(document, read_file=read)

    assert asked == ["flows/prod.yaml"]
    assert configuration.projects[0].pipelines[0].stages[0].release_flow_file == "flows/prod.yaml"


# -- shape errors --------------------------------------------------------------------------------


def test_parse_configuration__document_must_be_a_mapping() -> None:
    assert only_issue(["shop"]) == Issue("", "the configuration must be a mapping with a 'projects' list")


def test_parse_configuration__projects_is_required() -> None:
    assert only_issue({}) == Issue("projects", "is required")


def test_parse_configuration__unknown_keys_are_rejected_where_they_are() -> None:
    document = small(resources=["api"], releaseflow={})
    document["version"] = 1
    document["projects"][0]["resources"]["servces"] = []
    document["projects"][0]["resources"]["services"][0]["image"] = "x"

    assert issues_of(document) == [
        Issue("version", "unknown key (expected one of: projects)"),
        Issue(
            "projects[0].resources.servces",
            "unknown key (expected one of: services, jobs, addons, buildServices)",
        ),
        Issue("projects[0].resources.services[0].image", "unknown key (expected one of: id, driver, spec)"),
        Issue(
            "projects[0].pipelines[0].stages[0].releaseflow",
            "unknown key (expected one of: name, resources, releaseFlow, releaseFlowFile)",
        ),
    ]


def test_parse_configuration__wrong_types_are_named() -> None:
    document = {"projects": [{"id": "shop", "resources": {"services": {"id": "api"}}, "pipelines": "main"}]}

    assert issues_of(document) == [
        Issue("projects[0].resources.services", "must be a list"),
        Issue("projects[0].pipelines", "must be a list"),
    ]


def test_parse_configuration__spec_must_be_a_mapping() -> None:
    document = small()
    document["projects"][0]["resources"]["services"][0]["spec"] = ["python", "-m", "api"]

    assert only_issue(document) == Issue(
        "projects[0].resources.services[0].spec", "must be a mapping (the driver's settings)"
    )


def test_parse_configuration__spec_must_hold_json_values() -> None:
    document = small()
    document["projects"][0]["resources"]["addons"][0]["spec"] = {"since": datetime.date(2024, 1, 31)}

    assert only_issue(document) == Issue(
        "projects[0].resources.addons[0].spec.since",
        "a date is not a JSON value (quote it to make it a string)",
    )


# -- ids and names -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["Api", "api_v2", "-api", "api-", "9api", "", "a" * 64])
def test_parse_configuration__resource_id_must_be_a_slug(bad: str) -> None:
    document = small()
    document["projects"][0]["resources"]["jobs"][0]["id"] = bad

    assert only_issue(document) == Issue(
        "projects[0].resources.jobs[0].id", f"'{bad}' is not a valid job id: {SLUG_RULE}"
    )


def test_parse_configuration__longest_slug_is_accepted() -> None:
    document = {"projects": [{"id": "a" * 63}]}

    assert parse_configuration(document, read_file=no_files).projects[0].id == "a" * 63


def test_parse_configuration__missing_ids_are_required() -> None:
    document = {
        "projects": [{"resources": {"addons": [{"driver": "docker"}]}, "pipelines": [{"name": "Main"}]}]
    }

    assert issues_of(document) == [
        Issue("projects[0].id", "is required"),
        Issue("projects[0].resources.addons[0].id", "is required"),
        Issue("projects[0].pipelines[0].id", "is required"),
    ]


def test_parse_configuration__ids_are_unique_across_resource_kinds() -> None:
    document = small()
    document["projects"][0]["resources"]["addons"].append({"id": "api"})

    assert only_issue(document) == Issue(
        "projects[0].resources.addons[1].id",
        "id 'api' is already used by the service at projects[0].resources.services[0]; "
        "ids are unique across a project's services, jobs, addons and build services",
    )


def test_parse_configuration__project_and_pipeline_ids_are_unique() -> None:
    document = {
        "projects": [
            {"id": "shop", "pipelines": [{"id": "main"}, {"id": "main", "name": "Other"}]},
            {"id": "shop"},
        ]
    }

    assert issues_of(document) == [
        Issue(
            "projects[0].pipelines[1].id", "pipeline 'main' is already defined at projects[0].pipelines[0]"
        ),
        Issue("projects[1].id", "project 'shop' is already defined at projects[0]"),
    ]


def test_parse_configuration__same_resource_id_in_two_projects_is_fine() -> None:
    service = {"services": [{"id": "api"}]}
    document = {"projects": [{"id": "shop", "resources": service}, {"id": "blog", "resources": service}]}

    configuration = parse_configuration(document, read_file=no_files)

    assert [project.resources[0].id for project in configuration.projects] == ["api", "api"]


@pytest.mark.parametrize("bad", ["ab", "a" * 40, "Main  line", "main-", "1main", "main_line"])
def test_parse_configuration__pipeline_name_follows_the_northflank_rule(bad: str) -> None:
    document = {"projects": [{"id": "shop", "pipelines": [{"id": "main", "name": bad}]}]}

    assert only_issue(document) == Issue(
        "projects[0].pipelines[0].name",
        f"'{bad}' is not a valid pipeline name: 3-39 characters, {NAME_CHARACTERS}",
    )


def test_parse_configuration__pipeline_name_is_required_when_the_id_is_not_a_valid_name() -> None:
    document = {"projects": [{"id": "shop", "pipelines": [{"id": "ci"}]}]}

    assert only_issue(document) == Issue(
        "projects[0].pipelines[0].name",
        f"is required: the id 'ci' is not a valid pipeline name (3-39 characters, {NAME_CHARACTERS})",
    )


def test_parse_configuration__pipeline_names_are_unique_per_project() -> None:
    document = {
        "projects": [
            {"id": "shop", "pipelines": [{"id": "a1", "name": "Main"}, {"id": "b1", "name": "Main"}]}
        ]
    }

    assert only_issue(document) == Issue(
        "projects[0].pipelines[1].name", "pipeline name 'Main' is already used by projects[0].pipelines[0]"
    )


def test_parse_configuration__description_is_at_most_200_characters() -> None:
    document = {"projects": [{"id": "shop", "description": "x" * 201}]}

    assert only_issue(document) == Issue(
        "projects[0].description", "must be at most 200 characters (has 201)"
    )


# -- stages --------------------------------------------------------------------------------------


def test_parse_configuration__stage_names_are_unique_ignoring_case() -> None:
    document = {
        "projects": [
            {"id": "shop", "pipelines": [{"id": "main", "stages": [{"name": "QA"}, {"name": "qa"}]}]}
        ]
    }

    assert only_issue(document) == Issue(
        "projects[0].pipelines[0].stages[1].name",
        "stage 'qa' is already defined at projects[0].pipelines[0].stages[0] ('QA'); "
        "stage names are unique per pipeline, ignoring case",
    )


def test_parse_configuration__stage_name_is_checked() -> None:
    document = {
        "projects": [{"id": "shop", "pipelines": [{"id": "main", "stages": [{"name": "Pre prod!"}, {}]}]}]
    }

    assert issues_of(document) == [
        Issue(
            "projects[0].pipelines[0].stages[0].name",
            f"'Pre prod!' is not a valid stage name: up to 39 characters, {NAME_CHARACTERS}",
        ),
        Issue("projects[0].pipelines[0].stages[1].name", "is required"),
    ]


def test_parse_configuration__custom_stages_keep_their_order() -> None:
    stages = [{"name": "QA"}, {"name": "Canary"}, {"name": "Production"}]
    document = {"projects": [{"id": "shop", "pipelines": [{"id": "main", "stages": stages}]}]}

    pipeline = parse_configuration(document, read_file=no_files).projects[0].pipelines[0]

    assert [stage.name for stage in pipeline.stages] == ["QA", "Canary", "Production"]


def test_parse_configuration__empty_stage_list_is_refused() -> None:
    document = {"projects": [{"id": "shop", "pipelines": [{"id": "main", "stages": []}]}]}

    assert only_issue(document) == Issue(
        "projects[0].pipelines[0].stages",
        "a pipeline needs at least one stage (omit 'stages' for the default three)",
    )


def test_parse_configuration__stage_resources_must_exist_in_the_project() -> None:
    assert only_issue(small(resources=["api", "cache"])) == Issue(
        "projects[0].pipelines[0].stages[0].resources[1]", "no service, job or addon 'cache' in this project"
    )


def test_parse_configuration__build_services_are_never_in_a_stage() -> None:
    assert only_issue(small(resources=["builder"])) == Issue(
        "projects[0].pipelines[0].stages[0].resources[0]",
        "'builder' is a build service; build services are never placed in a stage "
        "(release flows can still use them)",
    )


def test_parse_configuration__stage_holds_services_jobs_and_addons() -> None:
    configuration = parse_configuration(small(resources=["api", "migrate", "db"]), read_file=no_files)

    assert configuration.projects[0].pipelines[0].stages[0].resources == ("api", "migrate", "db")


def test_parse_configuration__resource_belongs_to_at_most_one_stage_across_pipelines() -> None:
    document = small(resources=["api"])
    pipelines = document["projects"][0]["pipelines"]
    pipelines[0]["stages"].insert(0, {"name": "Staging", "resources": ["web", "web"]})
    pipelines.append({"id": "hotfix", "stages": [{"name": "Production", "resources": ["db", "api"]}]})

    assert issues_of(document) == [
        Issue(
            "projects[0].pipelines[0].stages[0].resources[1]",
            "'web' is already in pipeline main, stage Staging; a resource belongs to at most one stage",
        ),
        Issue(
            "projects[0].pipelines[1].stages[0].resources[1]",
            "'api' is already in pipeline main, stage Production; a resource belongs to at most one stage",
        ),
    ]


# -- release flows -------------------------------------------------------------------------------


def test_parse_configuration__inline_flow_is_kept_as_written() -> None:
    written = flow(release("api"))

    configuration = parse_configuration(small(resources=["api"], releaseFlow=written), read_file=no_files)

    assert configuration.projects[0].pipelines[0].stages[0].release_flow == written


def test_parse_configuration__inline_flow_issues_carry_the_full_path() -> None:
    written = flow(release("api", ref="first"), release("web"))
    document = small(resources=["api"], releaseFlow=written)

    issue = only_issue(document)

    expected = template_issues(
        written, StageConfig("Production", ("api",)), [ResourceConfig("api", "service")]
    )
    assert len(expected) == 1
    assert expected[0].path == "spec.spec.steps[1].spec.target.id"
    assert issue == Issue(
        "projects[0].pipelines[0].stages[0].releaseFlow.spec.spec.steps[1].spec.target.id",
        expected[0].message,
    )
    assert "web" in issue.message


def test_parse_configuration__inline_flow_structure_errors_carry_the_full_path() -> None:
    written = flow(release("api"), {"kind": "Teleport", "spec": {}})
    document = small(resources=["api"], releaseFlow=written)

    issues = issues_of(document)

    with pytest.raises(ValidationError) as caught:
        parse_template(written)
    prefix = "projects[0].pipelines[0].stages[0].releaseFlow."
    assert issues == [Issue(prefix + inner.path, inner.message) for inner in caught.value.issues]
    assert any(issue.path.startswith(prefix + "spec.spec.steps[1]") for issue in issues)


def test_parse_configuration__flow_is_checked_against_the_previous_stage() -> None:
    promote = {
        "kind": "Release",
        "spec": {
            "type": "deployment",
            "origin": {"id": "api", "type": "service"},
            "target": {"id": "web", "type": "service"},
        },
    }
    document = small(resources=["web"], releaseFlow=flow(promote))
    document["projects"][0]["pipelines"][0]["stages"].insert(0, {"name": "Staging", "resources": ["api"]})

    configuration = parse_configuration(document, read_file=no_files)

    assert configuration.projects[0].pipelines[0].stages[1].release_flow == flow(promote)
    # The same promotion from the first stage has no previous stage to take from.
    document["projects"][0]["pipelines"][0]["stages"].reverse()
    document["projects"][0]["pipelines"][0]["stages"][0]["resources"] = ["web"]
    document["projects"][0]["pipelines"][0]["stages"][1]["resources"] = ["api"]
    issues = issues_of(document)
    assert [issue.path for issue in issues] == [
        "projects[0].pipelines[0].stages[0].releaseFlow.spec.spec.steps[0].spec.origin.id"
    ]


def test_parse_configuration__flow_must_be_a_mapping() -> None:
    assert only_issue(small(releaseFlow="flows/prod.yaml")) == Issue(
        "projects[0].pipelines[0].stages[0].releaseFlow", "must be a mapping (a release flow template)"
    )


def test_parse_configuration__inline_flow_and_flow_file_exclude_each_other() -> None:
    document = small(releaseFlow=flow(), releaseFlowFile="flows/prod.yaml")

    assert only_issue(document) == Issue(
        "projects[0].pipelines[0].stages[0]", "set releaseFlow or releaseFlowFile, not both"
    )


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (
            "/etc/flows/prod.yaml",
            "'/etc/flows/prod.yaml' must be relative to the configuration file's folder",
        ),
        ("C:/flows/prod.yaml", "'C:/flows/prod.yaml' must be relative to the configuration file's folder"),
        (
            "../flows/prod.yaml",
            "'../flows/prod.yaml' must name a file inside the configuration file's folder",
        ),
        (
            "flows/../../prod.yaml",
            "'flows/../../prod.yaml' must name a file inside the configuration file's folder",
        ),
        ("flows\\prod.yaml", "'flows\\prod.yaml': use forward slashes in file paths"),
        ("", "must be a file path (a non-empty string)"),
    ],
)
def test_parse_configuration__flow_file_must_stay_in_the_folder(written: str, message: str) -> None:
    assert only_issue(small(releaseFlowFile=written)) == Issue(
        "projects[0].pipelines[0].stages[0].releaseFlowFile", message
    )


def test_parse_configuration__unreadable_flow_file_is_an_issue() -> None:
    assert only_issue(small(releaseFlowFile="flows/prod.yaml"), files({})) == Issue(
        "projects[0].pipelines[0].stages[0].releaseFlowFile (flows/prod.yaml)",
        "cannot read the file: No such file or directory",
    )


def test_parse_configuration__flow_file_that_is_not_utf8_is_an_issue() -> None:
    def read(path: str) -> str:
        return b"\xff\xfe".decode("utf-8")

    assert only_issue(small(releaseFlowFile="prod.yaml"), read) == Issue(
        "projects[0].pipelines[0].stages[0].releaseFlowFile (prod.yaml)",
        "cannot read the file: it is not UTF-8 text",
    )


def test_parse_configuration__malformed_flow_file_reports_the_documents_issue() -> None:
    text = "apiVersion: v1.2\nspec: [unclosed\n"
    with pytest.raises(ValidationError) as caught:
        load_document(text, source="flows/prod.yaml")

    issues = issues_of(small(releaseFlowFile="flows/prod.yaml"), files({"flows/prod.yaml": text}))

    assert issues == [
        Issue("projects[0].pipelines[0].stages[0].releaseFlowFile (flows/prod.yaml)", str(inner))
        for inner in caught.value.issues
    ]


def test_parse_configuration__flow_file_issues_name_the_file_and_the_path_inside_it() -> None:
    text = (
        "apiVersion: v1.2\n"
        "spec:\n"
        "  kind: Workflow\n"
        "  spec:\n"
        "    type: sequential\n"
        "    steps:\n"
        "      - kind: Release\n"
        "        spec:\n"
        "          type: registry\n"
        "          origin: {imagePath: registry.example.com/shop/api:1.0}\n"
        "          target: {id: web, type: service}\n"
    )
    document = small(resources=["api"], releaseFlowFile="flows/prod.yaml")
    stage = StageConfig("Production", ("api",))
    expected = template_issues(load_document(text, source="t"), stage, [ResourceConfig("api", "service")])
    assert [inner.path for inner in expected] == ["spec.spec.steps[0].spec.target.id"]

    issue = only_issue(document, files({"flows/prod.yaml": text}))

    assert issue == Issue(
        "projects[0].pipelines[0].stages[0].releaseFlowFile (flows/prod.yaml)",
        f"spec.spec.steps[0].spec.target.id: {expected[0].message}",
    )
    assert str(issue).startswith(
        "projects[0].pipelines[0].stages[0].releaseFlowFile (flows/prod.yaml): "
        "spec.spec.steps[0].spec.target.id: "
    )


# -- several at once -----------------------------------------------------------------------------


def test_parse_configuration__reports_every_issue_at_once() -> None:
    document = copy.deepcopy(example_document())
    shop = document["projects"][0]
    shop["resources"]["services"][0]["id"] = "API"
    shop["pipelines"][0]["name"] = "x"
    shop["pipelines"][0]["stages"][2]["resources"].append("api-builder")
    shop["pipelines"][0]["stages"][1]["releaseFlowFile"] = "flows/missing.yaml"

    with pytest.raises(ValidationError) as caught:
        parse_configuration(document, read_file=read_fixture, source="example.yaml")

    paths = [issue.path for issue in caught.value.issues]
    assert paths[:3] == [
        "projects[0].resources.services[0].id",
        "projects[0].pipelines[0].name",
        # api-dev is no longer defined, so the Development stage cannot hold it ...
        "projects[0].pipelines[0].stages[0].resources[0]",
    ]
    assert "projects[0].pipelines[0].stages[1].releaseFlowFile (flows/missing.yaml)" in paths
    assert "projects[0].pipelines[0].stages[2].resources[3]" in paths
    assert caught.value.subject == "configuration example.yaml"
    assert str(caught.value).startswith(f"configuration example.yaml is invalid ({len(paths)} errors):")


def test_configuration_docs__examples_match_the_fixtures() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in docs.split("```yaml\n")[1:]]

    assert load_document(blocks[0], source="docs") == example_document()
    assert load_document(blocks[1], source="docs") == load_document(
        read_fixture("flows/staging.yaml"), source="f"
    )

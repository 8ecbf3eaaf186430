"""The release flow editor's view of a template: the node added per kind, the lenient drawing, which
node each problem belongs to, and the text in JSON and YAML."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import Route

from releaseflow.domain.documents import load_document
from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.template import SUPPORTED_NODE_KINDS
from releaseflow.domain.template_parser import parse_template
from releaseflow.domain.template_rules import StageScope, check_template
from releaseflow.web.editor import related_pages
from releaseflow.web.flow_editor import NODE_SKELETONS, DrawnNode, checked, read_text

# A stage holding what the placeholders of the added nodes name.
PLACEHOLDERS = StageScope(
    stage="Development",
    services=frozenset({"SERVICE"}),
    jobs=frozenset({"JOB"}),
    addons=frozenset({"ADDON"}),
    build_services=frozenset({"BUILD-SERVICE"}),
)


def flow(*steps: dict[str, Any], type: str = "sequential") -> dict[str, Any]:
    return {"apiVersion": "v1.2", "spec": {"kind": "Workflow", "spec": {"type": type, "steps": list(steps)}}}


def walk(node: DrawnNode) -> list[DrawnNode]:
    return [node, *(below for child in node.children for below in walk(child))]


def test_node_skeletons__one_per_supported_kind() -> None:
    assert tuple(NODE_SKELETONS) == SUPPORTED_NODE_KINDS


@pytest.mark.parametrize("kind", SUPPORTED_NODE_KINDS)
def test_node_skeletons__valid_once_the_placeholders_name_resources_of_the_stage(kind: str) -> None:
    template = parse_template(flow({**NODE_SKELETONS[kind], "ref": "added"}))
    assert check_template(template, PLACEHOLDERS) == []


def test_checked__attaches_each_problem_to_the_deepest_node_holding_its_path() -> None:
    inner = {
        "kind": "Workflow",
        "ref": "inner",
        "spec": {"type": "parallel", "steps": [{"kind": "Approval"}]},
    }
    steps = [{"kind": "Approval", "ref": f"a{index}", "spec": {"amount": 1}} for index in range(10)]
    document = flow(*steps, inner)
    problem = ValidationError(
        [
            Issue("spec.spec.steps[1].spec.amount", "must be at least 1"),
            Issue("spec.spec.steps[10].spec.steps[0].spec", "is required"),
            Issue("spec.spec.type", "must be one of sequential, parallel"),
        ]
    )
    drawn = checked(document, problem).drawing
    assert drawn is not None
    problems = {node.label: [issue.path for issue in node.problems] for node in walk(drawn)}
    assert problems["spec"] == ["spec.spec.type"]
    assert problems["a1"] == ["spec.spec.steps[1].spec.amount"]
    assert problems["inner"] == [] and problems["spec.spec.steps[10].spec.steps[0]"] == [
        "spec.spec.steps[10].spec.steps[0].spec"
    ]
    assert [node.workflow_type for node in walk(drawn) if node.is_workflow] == ["sequential", "parallel"]


def test_checked__draws_what_it_can_of_an_invalid_document_and_nothing_without_a_spec() -> None:
    drawn = checked({"spec": {"kind": 7, "spec": {"steps": ["not a node", {"ref": "x"}]}}}, None).drawing
    assert drawn is not None and drawn.kind == "?" and [child.label for child in drawn.children] == ["x"]
    assert checked({"apiVersion": "v1.2"}, None).drawing is None
    assert checked(None, None).renderings() == {}


def test_read_text__json_and_yaml_renderings_read_back_to_the_same_document() -> None:
    document = flow({"kind": "Approval", "ref": "ok", "spec": {"amount": 1}}, type="parallel")
    renderings = checked(document, None).renderings()
    assert renderings["yaml"].startswith("apiVersion: v1.2\nspec:\n  kind: Workflow")
    for text in renderings.values():
        assert load_document(text) == document
        assert read_text(text) == (document, ())


def test_read_text__a_syntax_error_names_its_line_and_column() -> None:
    document, issues = read_text('{\n  "spec": {\n}')
    assert document is None and len(issues) == 1 and "line 3" in issues[0].message


def test_issue_lines__the_line_a_path_leads_to_in_json_and_in_yaml() -> None:
    document = flow(
        {"kind": "Approval", "ref": "ok", "spec": {"amount": 0}}, {"kind": "Approval", "ref": "x"}
    )
    problem = ValidationError(
        [
            Issue("spec.spec.steps[0].spec.amount", "must be at least 1"),
            Issue("spec.spec.steps[1].spec", "is required"),  # missing: the node's own line
            Issue("triggers", "unknown"),  # not in the text: its deepest part there, the document
        ]
    )
    renderings = checked(document, None).renderings()
    for text, expected in ((renderings["json"], [12, 15, 1]), (renderings["yaml"], [10, 11, 1])):
        found = checked(document, problem, text).lines
        assert [found[issue] for issue in problem.issues] == expected, text
    assert checked(document, problem).lines == {}  # no text: no lines


def test_related_pages__links_the_stage_pages_the_interface_serves() -> None:
    async def nothing() -> None:
        return None

    stage_path = "/p/{project_id}/{pipeline_id}/{stage}"
    routes = [Route(f"{stage_path}/versions", nothing), Route(f"{stage_path}/runs", nothing)]
    assert related_pages(routes, "shop", "main", "Staging") == {
        "versions": "/web/p/shop/main/Staging/versions"
    }
    routes.append(Route("/p/{project_id}/{pipeline_id}/{stage}/settings", nothing))
    assert set(related_pages(routes, "shop", "main", "Staging")) == {"versions", "settings"}

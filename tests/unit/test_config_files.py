"""``releaseFlowFile``: every read problem is one issue among all the others of the file, and a path
that leads out of the configuration's folder (a symbolic link included) is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from releaseflow.domain.config import parse_configuration
from releaseflow.domain.config_document import configuration_document
from releaseflow.domain.errors import ValidationError
from releaseflow.engine.configuration import load_configuration_file, parse_configuration_document

EXAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "config" / "example.yaml"

FLOW = "apiVersion: v1.2\nspec:\n  kind: Workflow\n  spec:\n    type: sequential\n    steps: []\n"


def config_text(*flow_files: str) -> str:
    stages = "".join(
        f"          - name: Stage{index}\n            releaseFlowFile: {json.dumps(name)}\n"
        for index, name in enumerate(flow_files)
    )
    return "projects:\n  - id: Shop\n    pipelines:\n      - id: main\n        stages:\n" + stages


def issues_of(path: Path) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        load_configuration_file(path)
    return {issue.path: issue.message for issue in caught.value.issues}


def test_configuration_document__is_self_contained_and_parses_back_to_the_same_configuration() -> None:
    loaded = load_configuration_file(EXAMPLE)
    assert any(stage.release_flow_file for p in loaded.projects for q in p.pipelines for stage in q.stages)

    document = configuration_document(loaded)

    assert "releaseFlowFile" not in json.dumps(document)
    # As a server reads it: no folder, so a flow file left in it would be refused.
    assert parse_configuration_document(json.loads(json.dumps(document)), "the request body") == loaded


def test_parse_configuration__any_read_error_is_listed_with_the_other_errors() -> None:
    def read_file(name: str) -> str:
        raise ValueError("embedded null byte")

    document = {
        "projects": [
            {
                "id": "Shop",
                "pipelines": [
                    {"id": "main", "stages": [{"name": "Development", "releaseFlowFile": "x.yaml"}]}
                ],
            }
        ]
    }

    with pytest.raises(ValidationError) as caught:
        parse_configuration(document, read_file=read_file)

    assert [(issue.path, issue.message) for issue in caught.value.issues][1:] == [
        (
            "projects[0].pipelines[0].stages[0].releaseFlowFile (x.yaml)",
            "cannot read the file: embedded null byte",
        )
    ]
    assert caught.value.issues[0].path == "projects[0].id"


def test_load_configuration_file__control_characters_in_a_flow_file_name_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "shop.yaml"
    config.write_text(config_text("a\x00b.yaml"), encoding="utf-8")

    found = issues_of(config)

    # A NUL is refused wherever it stands in a document, before the file's fields are checked.
    assert found == {
        "projects[0].pipelines[0].stages[0].releaseFlowFile": "must not contain a NUL character (U+0000)",
    }


def test_load_configuration_file__symbolic_links_are_refused_with_every_other_error(tmp_path: Path) -> None:
    outside, inside = tmp_path / "outside", tmp_path / "config"
    outside.mkdir()
    (inside / "flows").mkdir(parents=True)
    (outside / "flow.yaml").write_text(FLOW, encoding="utf-8")
    (inside / "flows" / "real.yaml").write_text(FLOW, encoding="utf-8")
    (inside / "link.yaml").symlink_to(outside / "flow.yaml")
    (inside / "flows" / "out").symlink_to(outside)
    (inside / "inner.yaml").symlink_to(inside / "flows" / "real.yaml")  # even one that stays inside
    config = inside / "shop.yaml"
    config.write_text(
        config_text("link.yaml", "flows/out/flow.yaml", "inner.yaml", "missing.yaml", "flows/real.yaml"),
        encoding="utf-8",
    )

    found = issues_of(config)

    stage = "projects[0].pipelines[0].stages"
    refused = (
        "is a symbolic link; release flow files must be plain files inside the configuration file's folder"
    )
    assert found == {
        "projects[0].id": found["projects[0].id"],
        f"{stage}[0].releaseFlowFile (link.yaml)": f"refused: link.yaml {refused}",
        f"{stage}[1].releaseFlowFile (flows/out/flow.yaml)": f"refused: flows/out {refused}",
        f"{stage}[2].releaseFlowFile (inner.yaml)": f"refused: inner.yaml {refused}",
        f"{stage}[3].releaseFlowFile (missing.yaml)": "cannot read the file: No such file or directory",
    }

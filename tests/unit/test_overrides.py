"""Per-run overrides (``releaseflow.domain.overrides``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.overrides import apply_run_overrides
from releaseflow.domain.template_parser import parse_template

NORTHFLANK = Path(__file__).resolve().parent.parent / "fixtures" / "northflank"


def document() -> dict[str, Any]:
    return {
        "apiVersion": "v1.2",
        "spec": {
            "kind": "Workflow",
            "spec": {
                "type": "sequential",
                "steps": [
                    {
                        "kind": "Build",
                        "ref": "build",
                        "spec": {"id": "builder", "type": "service", "branch": "main"},
                    },
                    {
                        "kind": "Workflow",
                        "spec": {
                            "type": "parallel",
                            "steps": [
                                {
                                    "kind": "Release",
                                    "ref": "api",
                                    "spec": {
                                        "type": "build",
                                        "origin": {"id": "builder", "build": "${refs.build.id}"},
                                        "target": {"id": "api", "type": "service"},
                                    },
                                    "condition": "running",
                                },
                                {
                                    "kind": "Release",
                                    "spec": {
                                        "type": "build",
                                        "origin": {"id": "builder", "build": "latest"},
                                        "target": {"id": "api", "type": "service"},
                                    },
                                },
                            ],
                        },
                    },
                ],
            },
        },
    }


def steps(result: dict[str, Any]) -> list[dict[str, Any]]:
    return result["spec"]["spec"]["steps"]  # type: ignore[no-any-return]


def test_apply_run_overrides__shallow_patch_by_ref() -> None:
    result = apply_run_overrides(document(), {"build": {"branch": "devel", "sha": "a" * 40}}, None)
    assert steps(result)[0]["spec"] == {
        "id": "builder",
        "type": "service",
        "branch": "devel",
        "sha": "a" * 40,
    }
    parse_template(result)


def test_apply_run_overrides__does_not_change_its_input() -> None:
    original = document()
    kept = copy.deepcopy(original)
    replacement = {"type": "registry", "origin": {"imagePath": "nginx:1"}}
    apply_run_overrides(original, {"build": {"branch": "x"}}, {"api": replacement})
    assert original == kept
    assert replacement == {"type": "registry", "origin": {"imagePath": "nginx:1"}}


def test_apply_run_overrides__release_node_override_replaces_spec_and_keeps_target() -> None:
    replacement = {
        "type": "registry",
        "origin": {"imagePath": "nginx:latest"},
        "target": {"id": "evil", "type": "job"},
    }
    result = apply_run_overrides(document(), None, {"api": replacement})
    releases = steps(result)[1]["spec"]["steps"]
    for node in releases:
        assert node["spec"] == {
            "type": "registry",
            "origin": {"imagePath": "nginx:latest"},
            "target": {"id": "api", "type": "service"},
        }
    assert releases[0]["condition"] == "running"  # only the spec is replaced
    parse_template(result)


def test_apply_run_overrides__ref_patch_refines_release_override() -> None:
    result = apply_run_overrides(
        document(),
        {"api": {"origin": {"imagePath": "nginx:2"}}},
        {"api": {"type": "registry", "origin": {"imagePath": "nginx:1"}}},
    )
    first, second = steps(result)[1]["spec"]["steps"]
    assert first["spec"]["origin"] == {"imagePath": "nginx:2"}
    assert second["spec"]["origin"] == {"imagePath": "nginx:1"}


def test_apply_run_overrides__unknown_ref_and_target_are_all_reported() -> None:
    with pytest.raises(ValidationError) as caught:
        apply_run_overrides(document(), {"nope": {}, "build": {"branch": "x"}}, {"web": {}, "api": []})  # type: ignore[dict-item]
    assert caught.value.issues == (
        Issue("releaseNodeOverrides.web", "no Release node deploys to 'web'"),
        Issue("releaseNodeOverrides.api", "must be an object"),
        Issue("overrides.nope", "no node has ref 'nope'"),
    )


def test_apply_run_overrides__none_is_no_change() -> None:
    assert apply_run_overrides(document(), None, None) == document()
    assert apply_run_overrides(document(), {}, {}) == document()


def test_apply_run_overrides__northflank_example_target() -> None:
    example = json.loads((NORTHFLANK / "deploy-build-parallel.json").read_text())
    result = apply_run_overrides(
        example,
        None,
        {"job-prod": {"type": "build", "origin": {"id": "builder", "branch": "release", "build": "latest"}}},
    )
    first, second = steps(result)
    assert first["spec"]["origin"]["branch"] == "release"
    assert second["spec"]["origin"]["branch"] == "main"

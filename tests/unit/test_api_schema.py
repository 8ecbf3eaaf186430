"""The OpenAPI document the API serves: what every operation declares, whoever added it."""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from releaseflow.api.app import create_app
from releaseflow.api.limits import LARGEST_INTEGER
from releaseflow.settings import Settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns of a duplicate operationId: a fault here
        return create_app(Settings.from_env({}), with_worker=False).openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def integer_schemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The integer schemas of a parameter (an optional one is ``anyOf`` integer or null)."""
    for choice in [schema, *schema.get("anyOf", [])]:
        if choice.get("type") == "integer":
            yield choice


def test_every_integer_parameter__is_bounded_by_what_the_databases_store(document: dict[str, Any]) -> None:
    """A larger integer would reach the database (SQLite cannot bind it: an internal error)."""
    unbounded = [
        f"{label} {parameter['in']} {parameter['name']}"
        for label, operation in operations(document)
        for parameter in operation.get("parameters", [])
        for schema in integer_schemas(parameter["schema"])
        if schema.get("maximum", LARGEST_INTEGER + 1) > LARGEST_INTEGER
    ]
    assert not unbounded, f"integer parameters without a maximum <= {LARGEST_INTEGER}: {unbounded}"
    assert any(
        integer_schemas(p["schema"]) for _, op in operations(document) for p in op.get("parameters", [])
    )


def test_every_operation__has_its_own_operation_id(document: dict[str, Any]) -> None:
    counted = Counter(operation["operationId"] for _, operation in operations(document))
    assert [name for name, count in counted.items() if count > 1] == []


def test_every_operation__documents_its_refusals_in_the_error_envelope(document: dict[str, Any]) -> None:
    """The app answers request validation 400, never FastAPI's 422; every refusal is the envelope."""
    for label, operation in operations(document):
        answers = operation["responses"]
        assert "422" not in answers, label
        assert answers["4XX"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }, label
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert document["components"]["schemas"]["Error"]["required"] == ["error"]


def test_every_path_parameter__is_declared_once_by_its_own_name(document: dict[str, Any]) -> None:
    """A parameter object shared by two parameters of one route makes FastAPI read one value for both
    (``/versions/{version}/diff/{other}`` compared a version with itself)."""
    for label, operation in operations(document):
        declared = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        assert sorted(declared) == sorted(re.findall(r"{(\w+)}", label)), label

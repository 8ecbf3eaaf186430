"""The import contracts of pyproject.toml cover the whole package (import-linter checks the rest)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "releaseflow"


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return found


def top_level_modules() -> set[str]:
    modules = {f"releaseflow.{path.stem}" for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    modules |= {f"releaseflow.{path.parent.name}" for path in PACKAGE.glob("*/__init__.py")}
    return modules


def test_layers__name_every_top_level_module() -> None:
    (layers,) = [contract for contract in contracts() if contract["type"] == "layers"]
    assert isinstance(layers["layers"], list)
    placed = {name.strip() for layer in layers["layers"] for name in layer.split("|")}

    assert top_level_modules() - placed == set()


def test_layers__no_module_of_the_package_may_import_the_fakes() -> None:
    (testing,) = [
        contract for contract in contracts() if contract.get("forbidden_modules") == ["releaseflow.testing"]
    ]

    sources = testing["source_modules"]
    assert isinstance(sources, list)

    assert set(sources) == top_level_modules() - {"releaseflow.testing"}

"""Fixtures for acceptance tests: a releaseflow installation in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.acceptance.support import Releaseflow, free_port


@pytest.fixture
def releaseflow(tmp_path: Path) -> Iterator[Releaseflow]:
    installation = Releaseflow(data_dir=tmp_path / "data", port=free_port(), cwd=tmp_path)
    try:
        yield installation
    finally:
        installation.kill_all()

"""Fixtures for acceptance tests: a releaseflow installation in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.acceptance.api_support import Api, served_api
from tests.acceptance.support import Releaseflow, temporary_installation


@pytest.fixture
def releaseflow() -> Iterator[Releaseflow]:
    with temporary_installation("rf-acceptance-") as installation:
        yield installation


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, releaseflow: Releaseflow) -> Api:
    """A served installation with tokens and a finished run (api_support.py), on each database."""
    if request.param == "postgresql":
        releaseflow.extra_env["RELEASEFLOW_DATABASE_URL"] = request.getfixturevalue(
            "fresh_postgres_database"
        )()
    return served_api(releaseflow)

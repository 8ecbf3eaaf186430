"""Fixtures for acceptance tests: a releaseflow installation in a temporary directory."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.acceptance.api_support import Api, served_api
from tests.acceptance.support import Releaseflow, free_port
from tests.cleanup import stop_everything_under


@pytest.fixture
def releaseflow() -> Iterator[Releaseflow]:
    # Not tmp_path: a managed PostgreSQL addon runs as the `postgres` user (tests run as root in CI),
    # which must be able to enter the installation's folders.
    folder = Path(tempfile.mkdtemp(prefix="rf-acceptance-"))
    folder.chmod(0o755)
    installation = Releaseflow(data_dir=folder / "data", port=free_port(), cwd=folder)
    try:
        yield installation
    finally:
        installation.kill_all()
        stop_everything_under(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, releaseflow: Releaseflow) -> Api:
    """A served installation with tokens and a finished run (api_support.py), on each database."""
    if request.param == "postgresql":
        releaseflow.extra_env["RELEASEFLOW_DATABASE_URL"] = request.getfixturevalue(
            "fresh_postgres_database"
        )()
    return served_api(releaseflow)

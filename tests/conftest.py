"""Fixtures shared by the whole suite: a real PostgreSQL server, started only when a test asks for it.

* ``postgres_admin_url`` (session): ``postgresql://postgres@127.0.0.1:PORT/postgres``, a superuser URL of
  a throwaway PostgreSQL 15 cluster (see ``tests/postgres_cluster.py``), or of the server named by
  ``RELEASEFLOW_TEST_POSTGRES_URL``.
* ``postgres_cluster`` (session): that server's ``PostgresCluster``, for tests of database outages.
* ``fresh_postgres_database`` (function): a callable ``(template: str | None = None) -> str`` that
  creates a new, uniquely named, empty database (``CREATE DATABASE ... TEMPLATE template`` when given)
  and returns its URL. Every database it made is dropped when the test ends.

A test that uses PostgreSQL must never be skipped by accident: when the server cannot be started the
fixture errors, and a run-time skip of such a test (``pytest.skip`` in a fixture built on these) is
reported as a failure unless ``--allow-postgres-skips`` is given. Skips declared with a ``skip`` or
``skipif`` marker stay skips.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import psycopg
import pytest

# Helpers are imported as `tests.<module>` (benchmarks run as `python -m tests.benchmarks`): make the
# repository root importable however pytest was started.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.postgres_cluster import FreshDatabases, PostgresCluster  # noqa: E402

ISOLATED_ENVIRONMENT = ("XDG_CONFIG_HOME", "RELEASEFLOW_SERVER", "RELEASEFLOW_TOKEN")

FreshPostgresDatabase = Callable[..., str]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--allow-postgres-skips",
        action="store_true",
        default=False,
        help="let tests that use PostgreSQL be skipped instead of failing them (never in CI)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    uses_postgres = "postgres_cluster" in getattr(item, "fixturenames", ())
    if (
        report.skipped
        and uses_postgres
        and not hasattr(report, "wasxfail")
        # A skip declared with a marker is a visible decision; a skip at run time may hide a dead server.
        and item.get_closest_marker("skip") is None
        and item.get_closest_marker("skipif") is None
        and not item.config.getoption("allow_postgres_skips")
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} uses PostgreSQL and was skipped ({reason}); tests that use PostgreSQL must "
            "run, never skip. Pass --allow-postgres-skips to allow it locally."
        )
    return report


@pytest.fixture(scope="session", autouse=True)
def no_saved_login(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the command lines the tests run off the developer's own server: a login saved with
    ``releaseflow login`` (or RELEASEFLOW_SERVER/TOKEN) would make them act through it."""
    saved = {name: os.environ.get(name) for name in ISOLATED_ENVIRONMENT}
    for name in ("RELEASEFLOW_SERVER", "RELEASEFLOW_TOKEN"):
        os.environ.pop(name, None)
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """The session's server itself, for outage tests (cut connections; stop, start, restart it)."""
    cluster = PostgresCluster()
    with cluster as url:
        # Fail here, with the cause, rather than in the first test that connects.
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
        yield cluster


@pytest.fixture(scope="session")
def postgres_admin_url(postgres_cluster: PostgresCluster) -> str:
    return postgres_cluster.url


@pytest.fixture
def fresh_postgres_database(postgres_admin_url: str) -> Iterator[FreshPostgresDatabase]:
    databases = FreshDatabases(postgres_admin_url)
    yield databases.create
    databases.drop_all()

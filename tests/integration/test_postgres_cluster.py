"""The PostgreSQL test fixtures of tests/conftest.py and the cluster class behind them."""

from __future__ import annotations

import os
from collections.abc import Callable

import psycopg
import pytest
from tests.postgres_cluster import (
    URL_ENV,
    FreshDatabases,
    PostgresCluster,
    PostgresClusterError,
    database_url,
)


def test_postgres_admin_url__runs_a_query(postgres_admin_url: str) -> None:
    assert postgres_admin_url.startswith("postgresql://")
    with psycopg.connect(postgres_admin_url) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int, 40 + 2").fetchone()
    assert row is not None
    assert row[0] >= 150000
    assert row[1] == 42


@pytest.mark.skipif(bool(os.environ.get(URL_ENV)), reason=f"{URL_ENV}: not our server")
def test_postgres_admin_url__cluster_has_test_settings(postgres_admin_url: str) -> None:
    with psycopg.connect(postgres_admin_url) as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('fsync', 'synchronous_commit', 'full_page_writes', 'max_connections', 'listen_addresses')"
            ).fetchall()
        )
    assert settings == {
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
        "listen_addresses": "127.0.0.1",
    }


def test_fresh_postgres_database__databases_are_independent(
    fresh_postgres_database: Callable[..., str],
) -> None:
    first, second = fresh_postgres_database(), fresh_postgres_database()
    assert first != second
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("CREATE TABLE marker (id int)")
    with psycopg.connect(second) as conn:
        row = conn.execute("SELECT to_regclass('marker') IS NULL").fetchone()
    assert row == (True,)


def test_fresh_postgres_database__copies_a_template(
    fresh_postgres_database: Callable[..., str],
) -> None:
    template_url = fresh_postgres_database()
    with psycopg.connect(template_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE seeded (id int)")
        conn.execute("INSERT INTO seeded VALUES (7)")
    template_name = template_url.rsplit("/", 1)[1]

    copy_url = fresh_postgres_database(template=template_name)

    with psycopg.connect(copy_url) as conn:
        assert conn.execute("SELECT id FROM seeded").fetchall() == [(7,)]


def test_fresh_databases__drop_all_removes_what_it_created(postgres_admin_url: str) -> None:
    databases = FreshDatabases(postgres_admin_url)
    name = databases.create().rsplit("/", 1)[1]

    databases.drop_all()

    with psycopg.connect(postgres_admin_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert row == (0,)


def test_database_url__replaces_only_the_database() -> None:
    url = "postgresql://u:p@h:5433/postgres?sslmode=disable"
    assert database_url(url, "other") == "postgresql://u:p@h:5433/other?sslmode=disable"


def test_postgres_cluster__env_url_is_used_instead_of_a_new_cluster() -> None:
    external = "postgresql://someone@db.example:6543/postgres"
    cluster = PostgresCluster(environ={URL_ENV: external})

    assert cluster.start() == external
    assert cluster.base_dir is None  # nothing was initialised
    cluster.stop()  # and nothing to stop


def test_postgres_cluster__env_url_from_the_environment_is_adopted(
    monkeypatch: pytest.MonkeyPatch, postgres_admin_url: str
) -> None:
    # Point the override at the running test server: a second "cluster" must adopt it, not start one.
    monkeypatch.setenv(URL_ENV, postgres_admin_url)
    with PostgresCluster() as url, psycopg.connect(url) as conn:
        assert url == postgres_admin_url
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_postgres_cluster__missing_binaries_fail_with_install_hint() -> None:
    cluster = PostgresCluster(environ={"RELEASEFLOW_TEST_POSTGRES_BIN": "/nonexistent/bin"})

    with pytest.raises(PostgresClusterError, match="apt-get install -y postgresql-15"):
        cluster.start()
    assert cluster.base_dir is None

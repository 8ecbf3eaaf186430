"""Real processes ride out PostgreSQL restarts: ``serve`` and two ``worker`` processes, four in a row.

Each restart strikes a chain of job runs mid-run (``tests/chaos``); every job's effect is counted once.
"""

from __future__ import annotations

import sqlite3

import httpx
import psycopg
import pytest
from tests.acceptance.config import write_config
from tests.acceptance.support import Releaseflow, started_run_id, wait_until
from tests.chaos.faults import restart_postgres
from tests.chaos.project import CHAIN_LENGTH, ChaosProject
from tests.conftest import FreshPostgresDatabase
from tests.postgres_cluster import PostgresCluster

RESTARTS = 4


def test_postgres_restarts__serve_and_workers_ride_them_out_and_runs_complete(
    releaseflow: Releaseflow,
    postgres_cluster: PostgresCluster,
    fresh_postgres_database: FreshPostgresDatabase,
) -> None:
    releaseflow.extra_env["RELEASEFLOW_DATABASE_URL"] = fresh_postgres_database()
    server = releaseflow.serve()
    workers = [releaseflow.spawn("worker"), releaseflow.spawn("worker")]
    processes = [server, *workers]
    chain = ChaosProject(releaseflow)
    chain.set_up()
    releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url)), check=True)
    gated = started_run_id(
        releaseflow.cli("run", "--project", "acme", "main", "Production", check=True).stdout
    )
    releaseflow.wait_for_node(gated, "gate", "waiting")
    busy = started_run_id(
        releaseflow.cli("run", "--project", "acme", "main", "Development", check=True).stdout
    )

    for _ in range(RESTARTS):
        chain.start_run()  # the restart strikes it mid-chain
        restart_postgres(postgres_cluster, releaseflow, processes)

    for run_id in chain.runs:
        assert (
            releaseflow.wait_for_run(run_id, ("success", "failed", "aborted"), timeout=60)["status"]
            == "success"
        )
    effects = chain.effects()
    assert effects.exact and effects.done == CHAIN_LENGTH * RESTARTS, effects
    assert releaseflow.wait_for_run(busy, ("success", "failed", "aborted"), timeout=60)["status"] == "success"
    releaseflow.cli("approve", gated[:8], "gate", "--as", "alice", check=True)
    assert (
        releaseflow.wait_for_run(gated, ("success", "failed", "aborted"), timeout=60)["status"] == "success"
    )
    assert [message["body"]["message"] for message in releaseflow.inbox("prod")] == [
        "asking for approval",
        'approved by ["alice"]',
    ]
    assert "Traceback" not in releaseflow.logs()
    assert [Releaseflow.stop(process) for process in processes] == [0, 0, 0]


def break_the_queue(database_url: str) -> None:
    """A fault no retry can mend (a bug, as far as the worker can tell): its queue table disappears."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:").removeprefix("//")) as connection:
            connection.execute("ALTER TABLE node_runs RENAME TO node_runs_gone")
    else:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute("ALTER TABLE node_runs RENAME TO node_runs_gone")


def test_serve__exits_non_zero_when_its_worker_cannot_carry_on(releaseflow: Releaseflow) -> None:
    server = releaseflow.serve()
    break_the_queue(f"sqlite:///{releaseflow.data_dir / 'releaseflow.db'}")

    assert server.wait(timeout=30) == 1
    logs = releaseflow.logs()
    assert "the worker of this process ended unexpectedly" in logs and "node_runs" in logs
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{releaseflow.url}/healthz", timeout=5)


def test_worker__exits_non_zero_when_it_cannot_carry_on(
    releaseflow: Releaseflow, fresh_postgres_database: FreshPostgresDatabase
) -> None:
    url = fresh_postgres_database()
    releaseflow.extra_env["RELEASEFLOW_DATABASE_URL"] = url
    server = releaseflow.serve()
    worker = releaseflow.spawn("worker")
    wait_until(lambda: "releaseflow worker" in releaseflow.logs(), what="the worker to start")
    break_the_queue(url)

    assert worker.wait(timeout=30) == 1
    assert server.wait(timeout=30) == 1
    assert "the worker stopped; exiting so that its supervisor restarts it" in releaseflow.logs()

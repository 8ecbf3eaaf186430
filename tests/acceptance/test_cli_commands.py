"""The command line as a person meets it, without a server: what it imports, says and leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tests.acceptance.config import write_config
from tests.acceptance.support import COMMAND, Releaseflow, started_run_id

# What a read command has no use for: the HTTP server, PostgreSQL's client (on SQLite), the drivers,
# the worker and the engine's commands.
NOT_FOR_READING = (
    "fastapi",
    "uvicorn",
    "psycopg",
    "releaseflow.api",
    "releaseflow.platform.local",
    "releaseflow.platform.docker",
    "releaseflow.engine.worker",
    "releaseflow.engine.commands",
)


@pytest.fixture
def applied(releaseflow: Releaseflow) -> tuple[Releaseflow, str]:
    """An installation with the acceptance configuration applied and one run (no worker takes it)."""
    releaseflow.cli("db", "migrate", check=True)
    releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url)), check=True)
    started = releaseflow.cli("run", "main", "Development", "--name", "first", check=True)
    return releaseflow, started_run_id(started.stdout)


def imported(releaseflow: Releaseflow, *args: str) -> set[str]:
    """The modules ``releaseflow ARGS`` imports (from ``-X importtime``), checking it succeeded."""
    # The script or ``python -m releaseflow.cli.main``, run by this interpreter with -X importtime.
    command = COMMAND[1:] if COMMAND[0] == sys.executable else COMMAND
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *command, *args],
        cwd=releaseflow.cwd,
        env=releaseflow.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {
        line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("runs", "main", "Development"),
        ("show", "RUN"),
        ("state", "main"),
        ("flow", "main", "Development"),
        ("pipelines",),
        ("status", "main"),
        ("rollbacks", "RUN"),
    ],
)
def test_read_commands__import_neither_server_nor_drivers_nor_engine(
    applied: tuple[Releaseflow, str], args: tuple[str, ...]
) -> None:
    releaseflow, run_id = applied

    modules = imported(releaseflow, *(run_id if arg == "RUN" else arg for arg in args))

    assert "releaseflow.cli.main" in modules
    unwanted = sorted(
        name for name in modules if any(name == bad or name.startswith(bad + ".") for bad in NOT_FOR_READING)
    )
    assert unwanted == []


def test_runs__an_empty_filter_says_no_run_matches_it(applied: tuple[Releaseflow, str]) -> None:
    releaseflow, _ = applied

    filtered = releaseflow.cli("runs", "main", "Development", "--status", "failed", check=True).stdout
    none_yet = releaseflow.cli("runs", "main", "Staging", check=True).stdout

    assert filtered.strip() == "no run of acme/main/Development matches --status failed"
    assert none_yet.strip() == "no runs of acme/main/Staging yet"


def test_read_command__without_data_says_where_it_looked_and_creates_nothing(
    releaseflow: Releaseflow,
) -> None:
    releaseflow.extra_env["RELEASEFLOW_DATA_DIR"] = ""

    result = releaseflow.cli("runs", "main", "Development")

    assert result.returncode == 1
    assert result.stdout == ""
    assert f"{releaseflow.cwd / 'data' / 'releaseflow.db'} does not exist" in result.stderr
    assert "RELEASEFLOW_DATA_DIR" in result.stderr and "--data-dir" in result.stderr
    assert "db migrate" not in result.stderr
    assert not (releaseflow.cwd / "data").exists()


def test_output_into_a_closed_pipe__ends_without_a_traceback(applied: tuple[Releaseflow, str]) -> None:
    releaseflow, run_id = applied
    reader, writer = os.pipe()
    os.close(reader)  # like `| head` that has already stopped reading
    try:
        result = subprocess.run(
            [*COMMAND, "show", run_id, "--json"],
            cwd=releaseflow.cwd,
            env=releaseflow.env(),
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(writer)

    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr
    assert result.stderr == ""

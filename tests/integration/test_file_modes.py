"""Data releaseflow creates is private: folders 0700, the SQLite database and its journals 0600."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from releaseflow.application import standard_drivers
from releaseflow.cli.main import main
from releaseflow.settings import Settings
from releaseflow.store.database import open_database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def present(*paths: Path) -> bool:
    return all(path.exists() for path in paths)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: modes must not depend on the caller's umask."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_db_migrate__creates_a_private_data_directory_and_database(
    tmp_path: Path, open_umask: None, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "new" / "data"

    assert main(["--data-dir", str(data), "db", "migrate"]) == 0

    database = data / "releaseflow.db"
    assert (mode(tmp_path / "new"), mode(data)) == (0o700, 0o700)
    assert mode(database) == 0o600
    journals = [Path(f"{database}{suffix}") for suffix in ("-wal", "-shm")]
    assert all(mode(journal) == 0o600 for journal in journals if journal.exists())


async def test_open_database__journals_take_the_private_mode(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "db" / "releaseflow.db"
    db = await open_database(f"sqlite://{path}")
    try:
        async with db.transaction() as tx:
            await tx.execute("CREATE TABLE secrets (seed TEXT)")
            await tx.execute("INSERT INTO secrets VALUES ('s3cr3t')")
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert present(wal, shm)
        assert (mode(path), mode(wal), mode(shm), mode(path.parent)) == (0o600, 0o600, 0o600, 0o700)
    finally:
        await db.close()


async def test_open_database__an_old_world_readable_database_is_narrowed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    path = shared / "releaseflow.db"
    path.touch()
    path.chmod(0o644)

    db = await open_database(f"sqlite://{path}")
    await db.close()

    assert mode(path) == 0o600
    assert mode(shared) == 0o755  # a folder that existed is the owner's to decide


def test_settings_drivers__state_folders_are_private(tmp_path: Path, open_umask: None) -> None:
    data = tmp_path / "data"
    settings = Settings.from_env({}, data_dir=str(data))
    settings = dataclasses.replace(settings, docker_host="unix:///nonexistent/docker.sock")

    drivers = standard_drivers(settings)

    assert {"local", "docker"} <= set(drivers.names())
    assert (mode(data), mode(data / "local"), mode(data / "docker")) == (0o700, 0o700, 0o700)

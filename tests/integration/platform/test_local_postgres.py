"""PostgreSQL addons of the local driver against real PostgreSQL 15: managed clusters and external servers.

One managed cluster serves the module (initdb costs seconds); every test uses a new ``PostgresAddons``
on the same root, which is how a restarted worker finds the cluster again. Teardown stops and deletes
every cluster under the root and checks that no postmaster of it is left.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from tests.postgres_cluster import free_port

from releaseflow.platform.driver import DriverError, Resource
from releaseflow.platform.local.postgres import AddonState, PostgresAddons
from releaseflow.platform.local.postgres_cluster import ManagedCluster
from releaseflow.platform.local.postgres_records import BackupStatus, Records

PROJECT = "shop"
# Nothing in these clusters has to survive a crash: spare the disk.
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "shared_buffers": "'32MB'"}
WAIT = 30.0  # seconds any backup or restore of these tiny databases may take


def addon(addon_id: str = "main-db", **spec: object) -> Resource:
    return Resource(id=addon_id, kind="addon", driver="local", spec={"type": "postgresql", **spec})


MAIN = addon()


def _postmasters_under(root: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(root) in cmdline and "postgres" in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def _cluster_dirs(root: Path) -> list[Path]:
    return [pid_file.parent.parent for pid_file in root.glob("*/*/data/postmaster.pid")]


def _process_uid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0])


async def _remove_every_cluster(root: Path) -> None:
    for directory in _cluster_dirs(root):
        await ManagedCluster(directory).remove()


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are private to root, and the server runs as `postgres`.
    path = Path(tempfile.mkdtemp(prefix="rf-local-pg-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        asyncio.run(_remove_every_cluster(path))
        left = _postmasters_under(path)
        shutil.rmtree(path, ignore_errors=True)
        assert not left, f"postmasters left running: {left}"


@pytest.fixture(scope="module")
def created(root: Path) -> str:
    """Creates the module's managed addon once; returns its connection URL."""

    async def create() -> str:
        manager = PostgresAddons(root, server_settings=FAST)
        await manager.ensure_running(MAIN, PROJECT)
        return await manager.connection_url(MAIN, PROJECT)

    return asyncio.run(create())


@pytest.fixture
async def manager(root: Path, created: str) -> PostgresAddons:
    addons = PostgresAddons(root, server_settings=FAST)
    await addons.start()
    await addons.ensure_running(MAIN, PROJECT)
    return addons


def _make_table(url: str, rows: list[tuple[int, str]]) -> str:
    table = f"items_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", rows)
    return table


def _rows(url: str, table: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return [(int(a), str(b)) for a, b in conn.execute(f"SELECT id, name FROM {table} ORDER BY id")]


def _damage(url: str, table: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DELETE FROM {table} WHERE id = 1")
        conn.execute(f"UPDATE {table} SET name = 'changed' WHERE id = 2")
        conn.execute(f"INSERT INTO {table} VALUES (99, 'new')")


ROWS = [(1, "apple"), (2, "pear"), (3, "plum")]


async def _round_trip(
    manager: PostgresAddons, resource: Resource, url: str, backup_type: str, compression: str
) -> Path:
    """Backup, damage the rows, restore, and check the rows are back; returns the backup's path."""
    table = _make_table(url, ROWS)
    started = await manager.backup(
        resource,
        PROJECT,
        backup_type=backup_type,
        compression=compression,
        run_id="run-1",
        key=str(uuid.uuid4()),
    )
    assert started.status is BackupStatus.RUNNING
    backup = await manager.wait_backup(started.id, WAIT)
    assert backup.status is BackupStatus.SUCCEEDED, backup.error
    assert backup.size_bytes > 0
    assert backup.run_id == "run-1"
    assert backup.ended_at is not None and backup.ended_at >= backup.started_at
    _damage(url, table)
    assert _rows(url, table) != ROWS

    restore = await manager.restore(resource, PROJECT, backup.id, str(uuid.uuid4()))
    finished = await manager.wait_restore(restore.id, WAIT)

    assert finished.status is BackupStatus.SUCCEEDED, finished.error
    assert _rows(url, table) == ROWS
    return Path(backup.path)


# -- managed -------------------------------------------------------------------------------------------


async def test_managed_addon__ensure_running_creates_a_cluster_that_answers(
    manager: PostgresAddons, root: Path
) -> None:
    status = await manager.status(MAIN, PROJECT)

    assert status.state is AddonState.RUNNING
    assert status.mode == "managed"
    assert status.host == "127.0.0.1" and status.port is not None
    assert status.version is not None and status.version.startswith("15")
    url = await manager.connection_url(MAIN, PROJECT)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_user, current_database(), 1").fetchone()
    assert row == ("main_db", "main_db", 1)
    assert "***" in str(status.to_data()["connectionUrl"])
    env = await manager.connection_env(MAIN, PROJECT)
    assert env["MAIN_DB_DATABASE_URL"] == url
    assert env["MAIN_DB_PGPORT"] == str(status.port)
    if os.geteuid() == 0:
        pid = int((root / PROJECT / "main-db" / "data" / "postmaster.pid").read_text().split()[0])
        assert _process_uid(pid) != 0  # PostgreSQL runs as the postgres user, never as root


async def test_managed_addon__second_manager_adopts_the_running_cluster(root: Path, created: str) -> None:
    directory = root / PROJECT / "main-db"
    before_pid = (directory / "data" / "postmaster.pid").read_text().split()[0]
    before_state = (directory / "addon.json").read_text()

    adopter = PostgresAddons(root, server_settings=FAST)
    await adopter.start()
    status = await adopter.ensure_running(MAIN, PROJECT)

    assert status.running
    assert (directory / "data" / "postmaster.pid").read_text().split()[0] == before_pid
    assert (directory / "addon.json").read_text() == before_state  # same port, passwords: no re-init
    assert await adopter.connection_url(MAIN, PROJECT) == created


async def test_managed_addon__stopped_cluster_is_started_again_on_its_port(manager: PostgresAddons) -> None:
    port = (await manager.status(MAIN, PROJECT)).port

    stopped = await manager.stop_addon(MAIN, PROJECT)
    assert stopped.state is AddonState.STOPPED
    assert "ensure_running" in stopped.message

    again = await manager.ensure_running(MAIN, PROJECT)
    assert again.running
    assert again.port == port


async def test_managed_addon__restart_comes_back_running(manager: PostgresAddons) -> None:
    status = await manager.restart(MAIN, PROJECT)

    assert status.running


async def test_backup__dump_gz_then_restore_brings_the_rows_back(
    manager: PostgresAddons, created: str
) -> None:
    path = await _round_trip(manager, MAIN, created, "dump", "gz")

    assert path.name.endswith(".dump") and path.is_file()
    assert path.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format


@pytest.mark.parametrize(
    ("backup_type", "compression", "suffix"),
    [
        ("dump", "zstd", ".dump.zst"),
        ("dump", "none", ".dump"),
        ("snapshot", "gz", ".dir"),
        ("snapshot", "zstd", ".tar.zst"),
        ("snapshot", "none", ".dir"),
    ],
)
async def test_backup__every_type_and_compression_restores(
    manager: PostgresAddons, created: str, backup_type: str, compression: str, suffix: str
) -> None:
    path = await _round_trip(manager, MAIN, created, backup_type, compression)

    assert path.name.endswith(suffix)
    if suffix.endswith(".zst"):
        assert path.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic


async def test_backup__same_key_gives_one_backup(manager: PostgresAddons) -> None:
    key = str(uuid.uuid4())

    first, second = await asyncio.gather(
        manager.backup(MAIN, PROJECT, backup_type="dump", compression="gz", run_id="r", key=key),
        manager.backup(MAIN, PROJECT, backup_type="dump", compression="gz", run_id="r", key=key),
    )
    done = await manager.wait_backup(first.id, WAIT)
    third = await manager.backup(MAIN, PROJECT, backup_type="dump", compression="gz", run_id="r", key=key)

    assert first.id == second.id == third.id
    assert first.id.startswith("bak-") and len(first.id) == 16
    assert third.status is BackupStatus.SUCCEEDED
    assert [b.id for b in await manager.list_backups(MAIN)].count(done.id) == 1
    with pytest.raises(DriverError, match="already made backup"):
        await manager.backup(addon("other-db"), PROJECT, backup_type="dump", compression="gz", key=key)


async def test_backup__answers_at_once_and_is_found_by_a_second_manager(
    manager: PostgresAddons, root: Path
) -> None:
    started = await manager.backup(
        MAIN, PROJECT, backup_type="dump", compression="none", key=str(uuid.uuid4())
    )
    await manager.wait_backup(started.id, WAIT)

    seen = await PostgresAddons(root).get_backup(started.id)

    assert seen.status is BackupStatus.SUCCEEDED
    assert seen.addon_id == "main-db" and seen.project_id == PROJECT


# -- external ------------------------------------------------------------------------------------------


async def test_external_addon__reports_running_and_is_backed_up_and_restored(
    root: Path, fresh_postgres_database: Callable[..., str]
) -> None:
    url = fresh_postgres_database()
    external = addon("ext-db", externalUrl=url)
    manager = PostgresAddons(root)

    status = await manager.ensure_running(external, PROJECT)

    assert status.running and status.mode == "external"
    assert status.version is not None and status.version.startswith("15")
    assert await manager.connection_url(external, PROJECT) == url
    await _round_trip(manager, external, url, "dump", "gz")


async def test_external_addon__closed_port_says_database_down_and_where(root: Path) -> None:
    port = free_port()
    down = addon("down-db", externalUrl=f"postgresql://postgres@127.0.0.1:{port}/app")
    manager = PostgresAddons(root)

    status = await manager.status(down, PROJECT)
    assert status.state is AddonState.UNREACHABLE
    assert f"127.0.0.1:{port}" in status.message and "refused" in status.message
    with pytest.raises(DriverError, match=f"127.0.0.1:{port} refused"):
        await manager.ensure_running(down, PROJECT)
    started = await manager.backup(down, PROJECT, backup_type="dump", compression="gz", key=str(uuid.uuid4()))
    failed = await manager.wait_backup(started.id, WAIT)

    assert failed.status is BackupStatus.FAILED
    assert "database down" in failed.error and f"127.0.0.1:{port}" in failed.error
    with pytest.raises(DriverError, match="only a succeeded backup"):
        await manager.restore(down, PROJECT, failed.id, str(uuid.uuid4()))


async def test_external_addon__wrong_password_says_authentication_failed(manager: PostgresAddons) -> None:
    port = (await manager.status(MAIN, PROJECT)).port
    wrong = addon("wrong-db", externalUrl=f"postgresql://main_db:not-it@127.0.0.1:{port}/main_db")

    status = await manager.status(wrong, PROJECT)

    assert status.state is AddonState.UNREACHABLE
    assert "authentication failed for user 'main_db'" in status.message


# -- spec ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "mysql"}, "spec.type must be one of postgresql, not 'mysql'"),
        ({}, "spec.type is required"),
        ({"type": "postgresql", "databse": "x"}, "spec.databse is not a known key"),
        ({"type": "postgresql", "externalUrl": "mysql://x"}, "spec.externalUrl must be a libpq URL"),
        ({"type": "postgresql", "user": "postgres"}, "spec.user cannot be 'postgres'"),
    ],
)
async def test_addon_spec__is_refused_clearly(tmp_path: Path, spec: dict[str, object], message: str) -> None:
    resource = Resource(id="db", kind="addon", driver="local", spec=spec)

    with pytest.raises(DriverError, match=message) as raised:
        await PostgresAddons(tmp_path).status(resource, PROJECT)

    assert raised.value.retryable is False


# -- failures and lifecycle ----------------------------------------------------------------------------


async def test_driver_start__brings_back_a_cluster_that_died(manager: PostgresAddons, root: Path) -> None:
    port = (await manager.status(MAIN, PROJECT)).port
    await ManagedCluster(root / PROJECT / "main-db").stop(mode="immediate")  # as a host reboot would
    assert (await manager.status(MAIN, PROJECT)).state is AddonState.STOPPED

    await PostgresAddons(root, server_settings=FAST).start()

    status = await manager.status(MAIN, PROJECT)
    assert status.running and status.port == port


async def test_backup__left_running_by_a_dead_process_of_an_older_releaseflow_reads_as_failed(
    manager: PostgresAddons, root: Path
) -> None:
    started = await manager.backup(MAIN, PROJECT, backup_type="dump", compression="gz", key=str(uuid.uuid4()))
    done = await manager.wait_backup(started.id, WAIT)
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    records = Records(root)
    # launch 0: an older releaseflow ran the pg_dump inside its own process, so with it gone so is pg_dump.
    legacy = replace(done, status=BackupStatus.RUNNING, ended_at=None, owner_pid=gone.pid, launch=0)
    records.backups.save(legacy)

    record = await PostgresAddons(root).get_backup(done.id)

    assert record.status is BackupStatus.FAILED
    assert f"(pid {gone.pid}) stopped before it finished" in record.error


async def test_backup__pg_dump_failure_gives_exit_code_and_stderr(
    manager: PostgresAddons, root: Path, created: str
) -> None:
    state = json.loads((root / PROJECT / "main-db" / "addon.json").read_text())
    admin = created.replace(f"main_db:{created.split(':')[2].split('@')[0]}@", "postgres:{}@").format(
        state["superuserPassword"]
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE TABLE private_notes (id int)")  # owned by the superuser: the role cannot read it
    try:
        as_role = addon("role-db", externalUrl=created)
        started = await manager.backup(
            as_role, PROJECT, backup_type="dump", compression="gz", key=str(uuid.uuid4())
        )
        failed = await manager.wait_backup(started.id, WAIT)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP TABLE private_notes")

    assert failed.status is BackupStatus.FAILED
    assert "pg_dump exited with 1" in failed.error
    assert "permission denied for table private_notes" in failed.error


async def test_managed_addon__missing_binaries_say_what_to_install(root: Path) -> None:
    manager = PostgresAddons(root, bin_dir=root / "no-such-bin")

    with pytest.raises(DriverError, match=r"apt-get install -y postgresql-15") as raised:
        await manager.ensure_running(MAIN, "no-binaries")

    assert raised.value.retryable is False
    assert "initdb" in str(raised.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to the postgres user")
async def test_managed_addon__root_the_postgres_user_cannot_enter_is_named(root: Path) -> None:
    private = root / "private"
    private.mkdir(mode=0o700)

    with pytest.raises(DriverError, match=f"the `postgres` user cannot enter {private}") as raised:
        await PostgresAddons(private).ensure_running(MAIN, PROJECT)

    assert raised.value.retryable is False


# -- spec.port ------------------------------------------------------------------------------------------


async def test_addon_port__spec_port_is_used_and_a_change_moves_the_cluster(root: Path) -> None:
    manager = PostgresAddons(root, server_settings=FAST)
    first, second = free_port(), free_port()
    resource = addon("fixed-port", port=first)

    await manager.ensure_running(resource, PROJECT)
    url = await manager.connection_url(resource, PROJECT)
    table = _make_table(url, ROWS)
    await manager.ensure_running(replace(resource, spec={**resource.spec, "port": second}), PROJECT)
    moved = await manager.connection_url(replace(resource, spec={**resource.spec, "port": second}), PROJECT)

    assert f":{first}/" in url and f":{second}/" in moved
    assert _rows(moved, table) == ROWS


async def test_addon_port__a_taken_port_is_refused_clearly(root: Path) -> None:
    manager = PostgresAddons(root, server_settings=FAST)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        with pytest.raises(DriverError, match=f"port {port} of 127.0.0.1 .* is already in use") as raised:
            await manager.ensure_running(addon("taken-port", port=port), PROJECT)

    assert raised.value.retryable is False

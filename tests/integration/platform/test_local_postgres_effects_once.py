"""Each backup, restore and restart of a local PostgreSQL addon at most once, across kill -9 of releaseflow.

A worker process asks for a backup (or restore) and is SIGKILLed while pg_dump (pg_restore) runs: held
on a table lock the test keeps, so the instant is exact. A new ``PostgresAddons`` on the same root (what
a restarted or another worker builds) must adopt that operation — wait for it and take its outcome —
and never start a second one. Runs are counted from the platform's side: ``pg_dump``/``pg_restore`` in
the driver's binary folder are wrappers that append a line per real run, then exec the real program.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from tests.cleanup import kill_processes_under
from tests.integration.platform.local_support import eventually
from tests.integration.platform.test_local_postgres import FAST, MAIN, PROJECT, WAIT, _postmasters_under

from releaseflow.platform.driver import AnswerState, DriverRequest, Operation
from releaseflow.platform.local.driver import LocalDriver
from releaseflow.platform.local.postgres import PostgresAddons
from releaseflow.platform.local.postgres_cluster import ManagedCluster
from releaseflow.platform.local.postgres_records import BackupStatus, Records
from releaseflow.platform.local.postgres_runs import launched_process
from releaseflow.platform.local.postgres_tools import find_bin_dir
from releaseflow.platform.local.processes import group_alive

# Asks for one backup or restore through a PostgresAddons of its own, prints the record's id and
# waits to be killed.
WORKER = """\
import asyncio, sys
from pathlib import Path
from releaseflow.platform.driver import Resource
from releaseflow.platform.local.postgres import PostgresAddons

root, bin_dir, kind, key, backup_id = sys.argv[1:6]
addon = Resource(id="main-db", kind="addon", driver="local", spec={"type": "postgresql"})

async def main():
    manager = PostgresAddons(Path(root), bin_dir=Path(bin_dir))
    await manager.start()
    if kind == "backup":
        record = await manager.backup(addon, "shop", backup_type="dump", compression="gz", key=key)
    else:
        record = await manager.restore(addon, "shop", backup_id, key)
    print(record.id, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""

COUNTED = """\
#!/bin/sh
case "$1" in --version) ;; *) echo "$$" >> {count} ;; esac
exec {real} "$@"
"""


@dataclass
class Host:
    root: Path
    bin_dir: Path  # the real binaries, with counting wrappers for pg_dump and pg_restore
    url: str  # the addon's database, as its own role
    admin_url: str  # the same, as the superuser (who sees every session's wait events)

    def manager(self) -> PostgresAddons:
        return PostgresAddons(self.root, bin_dir=self.bin_dir, server_settings=FAST)

    def runs(self, tool: str) -> int:
        count = self.bin_dir / f"{tool}.count"
        return len(count.read_text().splitlines()) if count.exists() else 0

    def backup_files(self) -> list[str]:
        return sorted(path.name for path in (self.root / PROJECT / MAIN.id / "backups").glob("bak-*"))


def _counting_bin_dir(into: Path) -> Path:
    real = find_bin_dir()
    into.mkdir(mode=0o755)
    for program in real.iterdir():
        if program.name in ("pg_dump", "pg_restore"):
            wrapper = into / program.name
            wrapper.write_text(COUNTED.format(count=into / f"{program.name}.count", real=program))
            wrapper.chmod(0o755)
        else:
            (into / program.name).symlink_to(program)
    return into


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    # Not pytest's tmp_path: its parents are private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="rf-pg-once-"))
    root.chmod(0o755)
    bin_dir = _counting_bin_dir(root / "bin")

    async def create() -> tuple[str, str]:
        manager = PostgresAddons(root, bin_dir=bin_dir, server_settings=FAST)
        await manager.ensure_running(MAIN, PROJECT)
        cluster = ManagedCluster(root / PROJECT / MAIN.id, bin_dir=bin_dir)
        state = cluster.load_state()
        assert state is not None
        admin = cluster.admin_target(state, "main_db").url()
        return await manager.connection_url(MAIN, PROJECT), admin

    try:
        yield Host(root, bin_dir, *asyncio.run(create()))
    finally:
        for records in ("_backups", "_restores"):
            kill_processes_under(root / records)
        for pid_file in root.glob("*/*/data/postmaster.pid"):
            asyncio.run(ManagedCluster(pid_file.parent.parent, bin_dir=bin_dir).remove())
        left = _postmasters_under(root)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"postmasters left running: {left}"


@pytest.fixture
async def table(host: Host) -> AsyncIterator[str]:
    name = f"items_{os.urandom(4).hex()}"
    with psycopg.connect(host.url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY)")
        conn.execute(f"INSERT INTO {name} SELECT generate_series(1, 10)")
    yield name
    with psycopg.connect(host.url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


async def _worker(host: Host, kind: str, key: str, backup_id: str = "") -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(  # noqa: ASYNC220 - killed with SIGKILL, read from a thread
        [sys.executable, "-c", WORKER, str(host.root), str(host.bin_dir), kind, key, backup_id],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), WAIT)
    assert line.strip(), f"the worker answered nothing (exit {process.poll()})"
    return process, line.strip()


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=WAIT)
    assert process.stdout is not None
    process.stdout.close()


def _waiting_on_lock(url: str, application: str, at_least: int = 1) -> bool:
    """Whether ``at_least`` sessions of ``application`` wait for a lock (a backend whose client was
    killed waits on: it notices only once it has the lock)."""
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
            (application,),
        ).fetchone()
    return bool(found and found[0] >= at_least)


async def test_backup__worker_killed_while_pg_dump_runs__is_adopted_and_dumped_once(
    host: Host, table: str
) -> None:
    before = host.runs("pg_dump")
    key = f"node-attempt-{os.urandom(4).hex()}"
    with psycopg.connect(host.url) as holder:
        holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")  # pg_dump waits here
        worker, backup_id = await _worker(host, "backup", key)
        await eventually(lambda: _waiting_on_lock(host.admin_url, "releaseflow-backup"), timeout=WAIT)
        _kill(worker)

        manager = host.manager()
        await manager.start()  # reconciles what the dead worker left in flight
        reclaimed = await manager.backup(MAIN, PROJECT, backup_type="dump", compression="gz", key=key)
        assert reclaimed.id == backup_id
        assert reclaimed.status is BackupStatus.RUNNING, reclaimed.error
        holder.rollback()  # pg_dump goes on

    done = await manager.wait_backup(backup_id, WAIT)
    again = await host.manager().backup(MAIN, PROJECT, backup_type="dump", compression="gz", key=key)

    assert done.status is BackupStatus.SUCCEEDED, done.error
    assert done.size_bytes > 0 and await asyncio.to_thread(Path(done.path).is_file)
    assert again.status is BackupStatus.SUCCEEDED and again.id == backup_id
    assert host.runs("pg_dump") - before == 1
    assert [name for name in host.backup_files() if name.startswith(backup_id)] == [Path(done.path).name]


async def test_restore__worker_killed_while_pg_restore_runs__is_adopted_and_restored_once(
    host: Host, table: str
) -> None:
    manager = host.manager()
    started = await manager.backup(
        MAIN, PROJECT, backup_type="dump", compression="none", key=f"b-{os.urandom(4).hex()}"
    )
    backup = await manager.wait_backup(started.id, WAIT)
    assert backup.status is BackupStatus.SUCCEEDED, backup.error
    with psycopg.connect(host.url, autocommit=True) as conn:
        conn.execute(f"DELETE FROM {table}")
    before = host.runs("pg_restore")
    key = f"node-attempt-{os.urandom(4).hex()}"
    with psycopg.connect(host.url) as holder:
        holder.execute(f"SELECT count(*) FROM {table}")  # pg_restore --clean waits to drop it
        worker, restore_id = await _worker(host, "restore", key, backup.id)
        await eventually(lambda: _waiting_on_lock(host.admin_url, "releaseflow-restore"), timeout=WAIT)
        _kill(worker)

        reclaimed_by = host.manager()
        await reclaimed_by.start()
        reclaimed = await reclaimed_by.restore(MAIN, PROJECT, backup.id, key)
        assert reclaimed.id == restore_id
        assert reclaimed.status is BackupStatus.RUNNING, reclaimed.error
        holder.rollback()

    done = await reclaimed_by.wait_restore(restore_id, WAIT)

    assert done.status is BackupStatus.SUCCEEDED, done.error
    assert host.runs("pg_restore") - before == 1
    with psycopg.connect(host.url) as conn:
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (10,)


async def test_backup__killed_with_its_pg_dump__fails_clearly_then_starts_again_once(
    host: Host, table: str
) -> None:
    before = host.runs("pg_dump")
    key = f"node-attempt-{os.urandom(4).hex()}"
    records = Records(host.root)

    async def killed_while_dumping(launch: int) -> None:
        """Kill the operation's whole process group (pg_dump included) while pg_dump waits."""
        await eventually(lambda: _waiting_on_lock(host.admin_url, "releaseflow-backup", launch), timeout=WAIT)
        group = launched_process(records.backups, backup_id, launch)
        assert group is not None
        os.killpg(group, signal.SIGKILL)
        await eventually(lambda: not group_alive(group), timeout=WAIT)

    with psycopg.connect(host.url) as holder:
        holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        worker, backup_id = await _worker(host, "backup", key)
        await killed_while_dumping(1)
        _kill(worker)

        manager = host.manager()
        await manager.start()
        failed = records.backups.load(backup_id)
        assert failed is not None and failed.status is BackupStatus.FAILED
        assert "interrupted: its process" in failed.error and "killed" in failed.error
        assert "starts it again, once" in failed.error

        second = await manager.backup(MAIN, PROJECT, backup_type="dump", compression="gz", key=key)
        assert second.id == backup_id and second.status is BackupStatus.RUNNING
        await killed_while_dumping(2)
        holder.rollback()

    third = await host.manager().backup(MAIN, PROJECT, backup_type="dump", compression="gz", key=key)

    assert third.status is BackupStatus.FAILED and "interrupted" in third.error
    assert host.runs("pg_dump") - before == 2  # the first start and the one start again; not a third
    assert not [name for name in host.backup_files() if name.startswith(backup_id)]


async def test_backup__killed_then_started_again__succeeds_with_one_file(host: Host, table: str) -> None:
    before = host.runs("pg_dump")
    key = f"node-attempt-{os.urandom(4).hex()}"
    with psycopg.connect(host.url) as holder:
        holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        worker, backup_id = await _worker(host, "backup", key)
        await eventually(lambda: _waiting_on_lock(host.admin_url, "releaseflow-backup"), timeout=WAIT)
        _kill(worker)
        group = launched_process(Records(host.root).backups, backup_id, 1)
        assert group is not None
        os.killpg(group, signal.SIGKILL)
        await eventually(lambda: not group_alive(group), timeout=WAIT)
    manager = host.manager()
    await manager.start()

    restarted = await manager.backup(MAIN, PROJECT, backup_type="dump", compression="gz", key=key)
    done = await manager.wait_backup(restarted.id, WAIT)

    assert done.status is BackupStatus.SUCCEEDED, done.error
    assert done.launch == 2
    assert host.runs("pg_dump") - before == 2
    assert [name for name in host.backup_files() if name.startswith(backup_id)] == [Path(done.path).name]


async def test_driver_stop__leaves_the_backup_running_for_the_next_process(host: Host, table: str) -> None:
    with psycopg.connect(host.url) as holder:
        holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        manager = host.manager()
        started = await manager.backup(MAIN, PROJECT, backup_type="dump", compression="gz", key="stop")
        await eventually(lambda: _waiting_on_lock(host.admin_url, "releaseflow-backup"), timeout=WAIT)

        await manager.stop()

        next_one = host.manager()
        await next_one.start()
        assert (await next_one.get_backup(started.id)).status is BackupStatus.RUNNING
        holder.rollback()

    assert (await next_one.wait_backup(started.id, WAIT)).status is BackupStatus.SUCCEEDED


async def test_restart_addon__same_key_restarts_once(host: Host, tmp_path: Path) -> None:
    driver = LocalDriver(tmp_path / "local", addons_root=host.root)
    cluster = ManagedCluster(host.root / PROJECT / MAIN.id, bin_dir=host.bin_dir)

    def restart(key: str) -> DriverRequest:
        return DriverRequest(Operation.RESTART_ADDON, MAIN, {"addonId": MAIN.id}, key, project_id=PROJECT)

    before = cluster.postmaster_pid()
    first = await driver.perform(restart("run/restart/1"))
    after_first = cluster.postmaster_pid()
    again = await driver.perform(restart("run/restart/1"))
    after_again = cluster.postmaster_pid()
    other = await driver.perform(restart("run/restart/2"))

    assert first.state is AnswerState.DONE and first.data["running"] is True, first.message
    assert after_first not in (None, before)
    assert again.data == first.data and after_again == after_first  # not restarted a second time
    assert other.state is AnswerState.DONE and cluster.postmaster_pid() not in (None, after_first)

"""Backups and restores of PostgreSQL addons: the records, and the pg_dump/pg_restore commands.

What each backup type and compression makes (pg_dump 15 has no zstd of its own; 16 and later do, and
then it is used directly):

=========  ===========  ==========================================================================
type       compression  file
=========  ===========  ==========================================================================
dump       gz / none    ``<id>.dump``: one custom-format archive (``pg_dump -Fc -Z 6`` / ``-Z 0``)
dump       zstd         ``<id>.dump.zst``: ``pg_dump -Fc -Z 0`` piped through ``zstd``
snapshot   gz / none    ``<id>.dir/``: a directory-format archive dumped with parallel jobs
                        (``pg_dump -Fd -j N``), one file per table, gzip per file or none
snapshot   zstd         ``<id>.tar.zst``: that directory (``-Z 0``), packed by ``tar`` and ``zstd``
=========  ===========  ==========================================================================

Both types are logical and hold one database, taken from one consistent snapshot of it; "snapshot" is
the one made for size (parallel jobs, a file per table) and "dump" the single portable file. Both are
restored by ``pg_restore --clean --if-exists --single-transaction --exit-on-error``: a restore that fails
changes nothing, and objects made after the backup (which the archive does not name) are kept.

Records are JSON files: ``<root>/_backups/<id>.json`` and ``<root>/_restores/<id>.json``; backup files
live in ``<root>/<project>/<addon>/backups/``. An id is derived from the idempotency key, so the same key
finds the same record from any process that shares the root.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from releaseflow.platform.driver import DriverError
from releaseflow.platform.local.postgres_cluster import (
    CommandResult,
    ConnectionTarget,
    command_env,
    kill_process,
    process_alive,
    read_json,
    run_command,
    write_json,
)

BACKUP_TYPES = ("dump", "snapshot")
COMPRESSIONS = ("gz", "zstd", "none")
GZIP_LEVEL = 6  # pg_dump's own default for compressed formats: a good size/speed balance
BACKUP_TIMEOUT = 12 * 3600.0  # seconds; the node's own timeout usually ends the wait much earlier
RESTORE_LOCK_TIMEOUT = "120s"  # a restore waits this long for tables an application holds locked


class BackupStatus(StrEnum):
    """Status of a backup, and of a restore (the same three words)."""

    RUNNING = "running"  # set when the request is accepted; the background task is working on it
    SUCCEEDED = "succeeded"  # set by the task: the backup file is complete / the restore committed
    FAILED = "failed"  # set by the task, or when read after the process running it went away; see error


RestoreStatus = BackupStatus
FINISHED = frozenset({BackupStatus.SUCCEEDED, BackupStatus.FAILED})


def key_digest(kind: str, key: str) -> str:
    return hashlib.sha256(f"{kind}\0{key}".encode()).hexdigest()


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class Backup:
    id: str  # bak-<12 hex>, derived from the idempotency key
    project_id: str
    addon_id: str
    database: str
    backup_type: str  # dump | snapshot
    compression: str  # gz | zstd | none
    layout: str  # how the file is made: custom, custom+zstd, directory, directory+tar+zstd
    path: str  # the file (or directory) once succeeded; while running it is written beside it
    status: BackupStatus
    run_id: str
    key_digest: str
    started_at: datetime
    ended_at: datetime | None = None
    size_bytes: int = 0
    error: str = ""
    owner_pid: int = 0  # the process running it, to notice when that process is gone
    owner_token: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "projectId": self.project_id,
            "addonId": self.addon_id,
            "database": self.database,
            "backupType": self.backup_type,
            "compression": self.compression,
            "layout": self.layout,
            "path": self.path,
            "status": self.status.value,
            "runId": self.run_id,
            "keyDigest": self.key_digest,
            "startedAt": _iso(self.started_at),
            "endedAt": _iso(self.ended_at),
            "sizeBytes": self.size_bytes,
            "error": self.error,
            "ownerPid": self.owner_pid,
            "ownerToken": self.owner_token,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Backup:
        started = _time(data.get("startedAt"))
        assert started is not None
        return cls(
            id=str(data["id"]),
            project_id=str(data["projectId"]),
            addon_id=str(data["addonId"]),
            database=str(data.get("database", "")),
            backup_type=str(data["backupType"]),
            compression=str(data["compression"]),
            layout=str(data["layout"]),
            path=str(data["path"]),
            status=BackupStatus(data["status"]),
            run_id=str(data.get("runId", "")),
            key_digest=str(data.get("keyDigest", "")),
            started_at=started,
            ended_at=_time(data.get("endedAt")),
            size_bytes=int(data.get("sizeBytes", 0)),
            error=str(data.get("error", "")),
            owner_pid=int(data.get("ownerPid", 0)),
            owner_token=data.get("ownerToken"),
        )

    def to_data(self) -> dict[str, Any]:
        """The shape of a node's response data (``${refs.<ref>.backupId}`` and so on)."""
        return {
            "backupId": self.id,
            "addonId": self.addon_id,
            "projectId": self.project_id,
            "database": self.database,
            "backupType": self.backup_type,
            "compressionType": self.compression,
            "status": self.status.value,
            "sizeBytes": self.size_bytes,
            "path": self.path,
            "runId": self.run_id,
            "startedAt": _iso(self.started_at),
            "endedAt": _iso(self.ended_at),
            "error": self.error or None,
        }


@dataclass(frozen=True)
class Restore:
    id: str  # rst-<12 hex>, derived from the idempotency key
    project_id: str
    addon_id: str
    backup_id: str
    database: str
    status: BackupStatus
    run_id: str
    key_digest: str
    started_at: datetime
    ended_at: datetime | None = None
    error: str = ""
    owner_pid: int = 0
    owner_token: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "projectId": self.project_id,
            "addonId": self.addon_id,
            "backupId": self.backup_id,
            "database": self.database,
            "status": self.status.value,
            "runId": self.run_id,
            "keyDigest": self.key_digest,
            "startedAt": _iso(self.started_at),
            "endedAt": _iso(self.ended_at),
            "error": self.error,
            "ownerPid": self.owner_pid,
            "ownerToken": self.owner_token,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Restore:
        started = _time(data.get("startedAt"))
        assert started is not None
        return cls(
            id=str(data["id"]),
            project_id=str(data["projectId"]),
            addon_id=str(data["addonId"]),
            backup_id=str(data["backupId"]),
            database=str(data.get("database", "")),
            status=BackupStatus(data["status"]),
            run_id=str(data.get("runId", "")),
            key_digest=str(data.get("keyDigest", "")),
            started_at=started,
            ended_at=_time(data.get("endedAt")),
            error=str(data.get("error", "")),
            owner_pid=int(data.get("ownerPid", 0)),
            owner_token=data.get("ownerToken"),
        )

    def to_data(self) -> dict[str, Any]:
        return {
            "restoreId": self.id,
            "backupId": self.backup_id,
            "addonId": self.addon_id,
            "projectId": self.project_id,
            "database": self.database,
            "status": self.status.value,
            "startedAt": _iso(self.started_at),
            "endedAt": _iso(self.ended_at),
            "error": self.error or None,
        }


INTERRUPTED = (
    "interrupted: the releaseflow process that ran it (pid {pid}) stopped before it finished; start a new one"
)


class Records:
    """The backup and restore records under one root."""

    def __init__(self, root: Path) -> None:
        self.backups_dir = root / "_backups"
        self.restores_dir = root / "_restores"

    def create_backup(self, backup: Backup) -> bool:
        """False when a backup with this id exists already (same idempotency key)."""
        return write_json(self.backups_dir / f"{backup.id}.json", backup.to_json(), exclusive=True)

    def save_backup(self, backup: Backup) -> None:
        write_json(self.backups_dir / f"{backup.id}.json", backup.to_json())

    def load_backup(self, backup_id: str) -> Backup | None:
        if not re.fullmatch(r"bak-[0-9a-f]{12}", backup_id):
            return None
        data = read_json(self.backups_dir / f"{backup_id}.json")
        return None if data is None else Backup.from_json(data)

    def backups(self) -> list[Backup]:
        found = []
        for path in sorted(self.backups_dir.glob("bak-*.json")):
            data = read_json(path)
            if data is not None:
                found.append(Backup.from_json(data))
        return found

    def create_restore(self, restore: Restore) -> bool:
        return write_json(self.restores_dir / f"{restore.id}.json", restore.to_json(), exclusive=True)

    def save_restore(self, restore: Restore) -> None:
        write_json(self.restores_dir / f"{restore.id}.json", restore.to_json())

    def load_restore(self, restore_id: str) -> Restore | None:
        if not re.fullmatch(r"rst-[0-9a-f]{12}", restore_id):
            return None
        data = read_json(self.restores_dir / f"{restore_id}.json")
        return None if data is None else Restore.from_json(data)

    def restores(self) -> list[Restore]:
        found = []
        for path in sorted(self.restores_dir.glob("rst-*.json")):
            data = read_json(path)
            if data is not None:
                found.append(Restore.from_json(data))
        return found


def orphaned(owner_pid: int, owner_token: str | None) -> bool:
    """True when the process that ran a record is gone (so nobody will ever finish it)."""
    return owner_pid <= 0 or not process_alive(owner_pid, owner_token)


def mark_interrupted(record: Backup | Restore, now: datetime) -> Backup | Restore:
    return replace(
        record, status=BackupStatus.FAILED, ended_at=now, error=INTERRUPTED.format(pid=record.owner_pid)
    )


# -- commands ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    name: str  # custom, custom+zstd, directory, directory+tar+zstd
    suffix: str  # of the file name
    dump_args: tuple[str, ...]  # format and compression options of pg_dump

    @property
    def is_directory(self) -> bool:
        return self.name == "directory"


def choose_layout(backup_type: str, compression: str, pg_dump_major: int, jobs: int) -> Layout:
    native_zstd = pg_dump_major >= 16  # pg_dump learnt --compress=zstd in 16
    level = {"gz": f"--compress={GZIP_LEVEL}", "none": "--compress=0", "zstd": "--compress=zstd"}
    if backup_type == "dump":
        if compression == "zstd" and not native_zstd:
            return Layout("custom+zstd", ".dump.zst", ("--format=custom", "--compress=0"))
        return Layout("custom", ".dump", ("--format=custom", level[compression]))
    parallel = f"--jobs={jobs}"
    if compression == "zstd" and not native_zstd:
        return Layout("directory+tar+zstd", ".tar.zst", ("--format=directory", "--compress=0", parallel))
    return Layout("directory", ".dir", ("--format=directory", level[compression], parallel))


def needs_zstd(layout_name: str) -> bool:
    return layout_name.endswith("zstd")


def require_program(name: str, why: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise DriverError(
            f"{name} not found, and it is needed {why}; install it (Debian/Ubuntu: `apt-get install -y "
            f"{name}`) or choose another compression",
            retryable=False,
        )
    return found


async def tool_major_version(tool: str) -> int:
    result = await run_command([tool, "--version"], timeout=30)
    match = re.search(r"(\d+)(?:\.\d+)?", result.stdout)
    if result.returncode != 0 or match is None:
        raise DriverError(f"{tool} --version failed (exit {result.returncode}): {result.tail()}")
    return int(match.group(1))


def path_size(path: Path) -> int:
    if path.is_dir():
        return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())
    return path.stat().st_size


def remove_path(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _free_bytes(path: Path) -> str:
    for candidate in (path, *path.parents):
        with contextlib.suppress(OSError):
            return f"{shutil.disk_usage(candidate).free} bytes free"
    return "free space unknown"


def explain_tool_failure(what: str, result: CommandResult, target: ConnectionTarget, output: Path) -> str:
    """Exit code and the end of stderr, with the likely cause spelled out when it is a known one."""
    tail = result.tail()
    lowered = tail.lower()
    cause = ""
    if "no space left on device" in lowered:
        cause = (
            f"disk full while writing {output.parent} ({_free_bytes(output.parent)}); free space on that "
            "filesystem or move the releaseflow data root. "
        )
    elif "connection refused" in lowered:
        cause = f"database down: connection to {target.where} refused. "
    elif "authentication failed" in lowered:
        cause = f"authentication failed for user '{target.user}' at {target.where}. "
    elif "server version mismatch" in lowered:
        cause = (
            f"the server at {target.where} is newer than {Path(result.argv[0]).name}; install the client "
            "tools of its major version. "
        )
    elif "lock timeout" in lowered or "could not obtain lock" in lowered:
        cause = "another session holds locks on the tables (an application or migration); retry when idle. "
    name = Path(result.argv[0]).name
    return f"{cause}{what}: {name} exited with {result.returncode}:\n{tail}"


async def run_pipeline(
    producer: list[str],
    consumer: list[str],
    *,
    producer_env: dict[str, str],
    consumer_env: dict[str, str],
    timeout: float,
) -> tuple[CommandResult, CommandResult]:
    """``producer | consumer``, both with stderr captured; either failing fails the pipeline."""
    read_fd, write_fd = os.pipe()
    processes: list[asyncio.subprocess.Process] = []
    try:
        try:
            processes.append(
                await asyncio.create_subprocess_exec(
                    *producer,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=write_fd,
                    stderr=asyncio.subprocess.PIPE,
                    env=producer_env,
                )
            )
        finally:
            os.close(write_fd)  # the producer holds its copy; ours would keep the consumer's input open
        try:
            processes.append(
                await asyncio.create_subprocess_exec(
                    *consumer,
                    stdin=read_fd,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=consumer_env,
                )
            )
        finally:
            os.close(read_fd)
        first, second = processes
        outputs = await asyncio.wait_for(
            asyncio.gather(first.communicate(), second.communicate()), timeout=timeout
        )
    except FileNotFoundError as error:
        raise DriverError(f"program not found: {error.filename}", retryable=False) from error
    except TimeoutError:
        raise DriverError(f"{Path(producer[0]).name} did not finish within {timeout:g} s") from None
    finally:
        for process in processes:
            await kill_process(process)
    (_, producer_err), (consumer_out, consumer_err) = outputs
    return (
        CommandResult(tuple(producer), first.returncode or 0, "", producer_err.decode(errors="replace")),
        CommandResult(
            tuple(consumer),
            second.returncode or 0,
            consumer_out.decode(errors="replace"),
            consumer_err.decode(errors="replace"),
        ),
    )


async def dump(
    pg_dump: str, target: ConnectionTarget, layout: Layout, output: Path, *, timeout: float = BACKUP_TIMEOUT
) -> None:
    """Write the backup to ``output``; a partial result never sits at ``output`` (it is renamed there)."""
    partial = output.with_name(output.name + ".partial")
    remove_path(partial)
    env = target.client_env({"PGAPPNAME": "releaseflow-backup"})
    base = [pg_dump, f"--dbname={target.conninfo(with_password=False)}", "--lock-wait-timeout=120s"]
    what = f"backup of database '{target.dbname}' at {target.where}"
    try:
        if layout.name == "custom+zstd":
            zstd = require_program("zstd", "for zstd compression with pg_dump 15")
            dumped, packed = await run_pipeline(
                [*base, *layout.dump_args],
                [zstd, "-q", "-T0", "-o", str(partial)],
                producer_env=env,
                consumer_env=command_env(),
                timeout=timeout,
            )
            for result in (dumped, packed):
                if result.returncode != 0:
                    raise DriverError(explain_tool_failure(what, result, target, output))
        elif layout.name == "directory+tar+zstd":
            zstd = require_program("zstd", "for zstd compression with pg_dump 15")
            tar = require_program("tar", "to pack a zstd snapshot")
            staging = output.with_name(output.name + ".staging")
            remove_path(staging)
            try:
                result = await run_command(
                    [*base, *layout.dump_args, f"--file={staging}"], env=env, timeout=timeout
                )
                if result.returncode != 0:
                    raise DriverError(explain_tool_failure(what, result, target, output))
                result = await run_command(
                    [
                        tar,
                        "--use-compress-program",
                        f"{zstd} -q -T0",
                        "-cf",
                        str(partial),
                        "-C",
                        str(staging),
                        ".",
                    ],
                    timeout=timeout,
                )
                if result.returncode != 0:
                    raise DriverError(explain_tool_failure(what, result, target, output))
            finally:
                await asyncio.to_thread(remove_path, staging)
        else:
            result = await run_command(
                [*base, *layout.dump_args, f"--file={partial}"], env=env, timeout=timeout
            )
            if result.returncode != 0:
                raise DriverError(explain_tool_failure(what, result, target, output))
        os.replace(partial, output)
    finally:
        await asyncio.to_thread(remove_path, partial)


async def restore(
    pg_restore: str,
    target: ConnectionTarget,
    layout_name: str,
    source: Path,
    *,
    keep_owners: bool,
    timeout: float = BACKUP_TIMEOUT,
) -> None:
    """Restore ``source`` into the database of ``target``, in one transaction."""
    if not await asyncio.to_thread(source.exists):
        raise DriverError(f"backup file {source} is missing; it was moved or deleted", retryable=False)
    # lock_timeout: an application holding a table must make the restore fail visibly, not hang.
    env = target.client_env(
        {"PGAPPNAME": "releaseflow-restore", "PGOPTIONS": f"-c lock_timeout={RESTORE_LOCK_TIMEOUT}"}
    )
    argv = [
        pg_restore,
        f"--dbname={target.conninfo(with_password=False)}",
        "--clean",
        "--if-exists",
        "--single-transaction",
        "--exit-on-error",
    ]
    if not keep_owners:
        # The role of an external URL is rarely a superuser: restore everything as that role.
        argv.append("--no-owner")
    what = f"restore into database '{target.dbname}' at {target.where}"
    if layout_name == "custom+zstd":
        zstd = require_program("zstd", "to read a zstd backup")
        unpacked, restored = await run_pipeline(
            [zstd, "-q", "-d", "-c", str(source)],
            argv,
            producer_env=command_env(),
            consumer_env=env,
            timeout=timeout,
        )
        for result in (restored, unpacked):
            if result.returncode != 0:
                raise DriverError(explain_tool_failure(what, result, target, source))
        return
    if layout_name == "directory+tar+zstd":
        zstd = require_program("zstd", "to read a zstd snapshot")
        tar = require_program("tar", "to unpack a zstd snapshot")
        staging = source.with_name(f"{source.name}.restore-{os.getpid()}")
        remove_path(staging)
        staging.mkdir(mode=0o700)
        try:
            result = await run_command(
                [tar, "--use-compress-program", f"{zstd} -q", "-xf", str(source), "-C", str(staging)],
                timeout=timeout,
            )
            if result.returncode != 0:
                raise DriverError(explain_tool_failure(what, result, target, staging))
            result = await run_command([*argv, "--format=directory", str(staging)], env=env, timeout=timeout)
            if result.returncode != 0:
                raise DriverError(explain_tool_failure(what, result, target, source))
        finally:
            await asyncio.to_thread(remove_path, staging)
        return
    result = await run_command([*argv, str(source)], env=env, timeout=timeout)
    if result.returncode != 0:
        raise DriverError(explain_tool_failure(what, result, target, source))

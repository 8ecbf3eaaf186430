"""Backups and restores of PostgreSQL addons: the pg_dump/pg_restore commands and what they write.

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

Backup files live in ``<root>/<project>/<addon>/backups/``; their records are in postgres_records.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from releaseflow.platform.driver import DriverError
from releaseflow.platform.local.postgres_connection import ConnectionTarget
from releaseflow.platform.local.postgres_tools import CommandResult, command_env, kill_process, run_command

BACKUP_TYPES = ("dump", "snapshot")
COMPRESSIONS = ("gz", "zstd", "none")
GZIP_LEVEL = 6  # pg_dump's own default for compressed formats: a good size/speed balance
BACKUP_TIMEOUT = 12 * 3600.0  # seconds; the node's own timeout usually ends the wait much earlier
RESTORE_LOCK_TIMEOUT = "120s"  # a restore waits this long for tables an application holds locked


# -- commands ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    name: str  # custom, custom+zstd, directory, directory+tar+zstd
    suffix: str  # of the file name
    dump_args: tuple[str, ...]  # format and compression options of pg_dump


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


def _check(what: str, target: ConnectionTarget, path: Path, *results: CommandResult) -> None:
    """Raise for the first of ``results`` that failed, with its cause explained."""
    for result in results:
        if result.returncode != 0:
            raise DriverError(explain_tool_failure(what, result, target, path))


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


def _partial(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def _staging(output: Path) -> Path:
    return output.with_name(output.name + ".staging")


def remove_leftovers(output: Path) -> None:
    """Remove what a dump to ``output`` whose process was killed left beside it."""
    remove_path(_partial(output))
    remove_path(_staging(output))


async def dump(
    pg_dump: str, target: ConnectionTarget, layout: Layout, output: Path, *, timeout: float = BACKUP_TIMEOUT
) -> None:
    """Write the backup to ``output``; a partial result never sits at ``output`` (it is renamed there)."""
    partial = _partial(output)
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
            _check(what, target, output, dumped, packed)
        elif layout.name == "directory+tar+zstd":
            zstd = require_program("zstd", "for zstd compression with pg_dump 15")
            tar = require_program("tar", "to pack a zstd snapshot")
            staging = _staging(output)
            remove_path(staging)
            try:
                result = await run_command(
                    [*base, *layout.dump_args, f"--file={staging}"], env=env, timeout=timeout
                )
                _check(what, target, output, result)
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
                _check(what, target, output, result)
            finally:
                await asyncio.to_thread(remove_path, staging)
        else:
            result = await run_command(
                [*base, *layout.dump_args, f"--file={partial}"], env=env, timeout=timeout
            )
            _check(what, target, output, result)
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
        _check(what, target, source, restored, unpacked)
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
            _check(what, target, staging, result)
            result = await run_command([*argv, "--format=directory", str(staging)], env=env, timeout=timeout)
            _check(what, target, source, result)
        finally:
            await asyncio.to_thread(remove_path, staging)
        return
    result = await run_command([*argv, str(source)], env=env, timeout=timeout)
    _check(what, target, source, result)

"""Backups and restores as processes of their own: starting them once per key, and reading how they went.

A request records its operation (``running``) and starts it detached (``postgres_operation``), under a
launch lock that the started process keeps until it has written its marker (``processes.spawn``), and
answers at once. Whatever instant the releaseflow process dies at, the operation is then either "never
started" (no marker, lock free) or "started and findable" (its marker): a later request with the same
idempotency key, from this process or another sharing the root, adopts a started one — it waits for it
and takes its outcome — and never starts a second pg_dump or pg_restore beside it.

Nothing watches an operation in the background: every read settles the record from its folder (see
``RecordFolder.launch_dir``). The process, or any process of its group (pg_dump outlives a killed
Python parent), still alive: running. Gone, with a result: succeeded or failed as it says. Gone without
one (killed), or never started: failed and *interrupted*; the next request with its key starts it
anew, once (``MAX_LAUNCHES``), so that a kill costs one more start and never a loop of them.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Generic

from releaseflow.platform.driver import DriverError
from releaseflow.platform.file_lock import open_lock, try_lock
from releaseflow.platform.local.postgres_backups import remove_leftovers
from releaseflow.platform.local.postgres_cluster import utcnow
from releaseflow.platform.local.postgres_operation import (
    OPERATION_FILE,
    PASSWORD_VARIABLE,
    RESULT_FILE,
)
from releaseflow.platform.local.postgres_records import (
    Backup,
    BackupStatus,
    RecordFolder,
    RecordT,
    mark_interrupted,
    orphaned,
)
from releaseflow.platform.local.postgres_tools import process_token
from releaseflow.platform.local.processes import (
    child_environment,
    group_alive,
    launch_lock,
    read_marker,
    spawn,
    tail,
)
from releaseflow.platform.local.state_files import optional_time, read_json, write_json

MAX_LAUNCHES = 2  # the first start, and one more after a start whose process died
LAUNCH_TIMEOUT_SECONDS = 30.0  # how long a request waits for another one starting the same operation
RUNNER = "releaseflow.platform.local.postgres_operation"
_LOCK = "launch.lock"
_MARKER = "process.json"
_LOG = "output.log"
_EXIT = "exit-code"
NEVER_STARTED = (
    "interrupted: the releaseflow process that asked for it (pid {pid}) stopped before starting it; "
    "a request with the same idempotency key starts it"
)
KILLED = (
    "interrupted: its process (pid {pid}) ended without a result (killed?){log}; a request with the "
    "same idempotency key starts it again, once"
)


class RecordRuns(Generic[RecordT]):
    """The records of one kind (backups or restores) and the processes that carry them out."""

    def __init__(self, folder: RecordFolder[RecordT], what: str) -> None:
        self.folder: RecordFolder[RecordT] = folder
        self.what = what  # "backup" or "restore", in messages
        self.lock = asyncio.Lock()  # held by a request of this process from its key check to its start

    def fresh(self, record_id: str, *, after: RecordT | None = None, **fields: Any) -> dict[str, Any]:
        """The fields of a new record: ``fields``, running, asked for by this process; ``after``: the
        interrupted record it starts again."""
        pid = os.getpid()
        return {
            **fields,
            "id": record_id,
            "status": BackupStatus.RUNNING,
            "started_at": utcnow(),
            "owner_pid": pid,
            "owner_token": process_token(pid),
            "launch": 1 if after is None else after.launch + 1,
        }

    @staticmethod
    def restartable(record: RecordT) -> bool:
        """Whether a request with the record's key starts its operation again (see the module's text)."""
        return record.interrupted and record.launch < MAX_LAUNCHES

    async def settle_all(self) -> None:
        for record in await asyncio.to_thread(self.folder.all):
            await self.settle(record)

    async def earlier(self, record_id: str, same: Any, made: Any) -> RecordT | None:
        """What an earlier request with the same idempotency key made, as it stands now; refused if it
        asked for something else. ``same(record)`` says whether it asked the same, ``made(record)``
        names what it made."""
        existing = await asyncio.to_thread(self.folder.load, record_id)
        if existing is None:
            return None
        if not same(existing):
            raise DriverError(
                f"idempotency key already made {made(existing)}; use a new key", retryable=False
            )
        return await self.settle(existing)

    async def get(self, record_id: str) -> RecordT:
        record = await asyncio.to_thread(self.folder.load, record_id)
        if record is None:
            raise DriverError(
                f"{self.what} '{record_id}' does not exist on this host (local driver)", retryable=False
            )
        return await self.settle(record)

    async def wait(self, record_id: str, timeout: float) -> RecordT:
        """The record once finished (for callers that must block: tests, the CLI)."""
        deadline = time.monotonic() + timeout
        while True:
            record = await self.get(record_id)
            if record.finished:
                return record
            if time.monotonic() >= deadline:
                raise DriverError(f"{self.what} '{record_id}' still running after {timeout:g} s")
            await asyncio.sleep(0.1)

    async def launch(
        self,
        record: RecordT,
        operation: dict[str, Any],
        password: str | None,
        *,
        again: RecordT | None = None,
    ) -> RecordT:
        """Record ``record`` and start ``operation`` (``postgres_operation``) for it, detached.

        ``again``: the interrupted record this one replaces. Decided under the launch's lock, so two
        processes asking with one key start one operation: the second answers what the first made.
        """
        folder = self.folder.launch_dir(record.id, record.launch)
        async with launch_lock(folder / _LOCK, timeout=LAUNCH_TIMEOUT_SECONDS) as lock_fd:
            if again is None:
                if not await asyncio.to_thread(self.folder.create, record):
                    return await self.get(record.id)
            else:
                current = await asyncio.to_thread(self.folder.load, record.id)
                if current != again:
                    # Another process started it again a moment ago.
                    return await self.get(record.id)
                await asyncio.to_thread(self.folder.save, record)
            await asyncio.to_thread(write_json, folder / OPERATION_FILE, operation)
            command = shlex.join(
                [
                    sys.executable,
                    "-m",
                    "releaseflow.platform.local.postgres_operation",
                    str(folder / OPERATION_FILE),
                ]
            )
            secret = {} if password is None else {PASSWORD_VARIABLE: password}
            try:
                await spawn(
                    command,
                    cwd=folder,
                    env=child_environment(secret),
                    log_path=folder / _LOG,
                    exit_file=folder / _EXIT,
                    marker=folder / _MARKER,
                    lock_fd=lock_fd,
                )
            except DriverError as error:
                failed = replace(
                    record, status=BackupStatus.FAILED, error=f"could not start the {self.what}: {error}"
                )
                failed = replace(failed, ended_at=utcnow())
                await asyncio.to_thread(self.folder.save, failed)
                return failed
        return record

    async def settle(self, record: RecordT) -> RecordT:
        """The record as its operation stands now (saved when that ended since the last read)."""
        if record.finished:
            return record
        if record.launch == 0:
            # Written by an older releaseflow that ran the operation inside the owner process.
            settled = (
                mark_interrupted(record, utcnow()) if orphaned(record.owner_pid, record.owner_token) else None
            )
        else:
            settled = await asyncio.to_thread(self._concluded, record)
        if settled is None:
            return record
        await asyncio.to_thread(self.folder.save, settled)
        return settled

    def _concluded(self, record: RecordT) -> RecordT | None:
        """How a launched operation ended, or None while it runs (or is being started)."""
        folder = self.folder.launch_dir(record.id, record.launch)
        handle = read_marker(folder / _MARKER)
        if handle is None:
            fd = open_lock(folder / _LOCK)
            try:
                if not try_lock(fd):
                    return None  # some releaseflow process is starting it right now
                # Read again under the lock: the starter may have finished since the first read.
                handle = read_marker(folder / _MARKER)
            finally:
                os.close(fd)
            if handle is None:
                return mark_interrupted(record, utcnow(), NEVER_STARTED.format(pid=record.owner_pid))
        if handle.is_alive() or group_alive(handle.pid):
            return None
        result = read_json(folder / RESULT_FILE)
        if result is None:
            if isinstance(record, Backup):
                remove_leftovers(Path(record.path))
            lines = tail(folder / _LOG, 3)
            log = f"; last output: {' / '.join(lines)}" if lines else ""
            return mark_interrupted(record, utcnow(), KILLED.format(pid=handle.pid, log=log))
        ended = optional_time(result.get("endedAt")) or utcnow()
        if result.get("status") != BackupStatus.SUCCEEDED.value:
            error = str(result.get("error") or f"the {self.what} failed")
            return replace(record, status=BackupStatus.FAILED, error=error, ended_at=ended)
        finished = replace(record, status=BackupStatus.SUCCEEDED, ended_at=ended)
        if isinstance(finished, Backup):
            finished = replace(finished, size_bytes=int(result.get("sizeBytes", 0)))
        return finished


def launched_process(folder: RecordFolder[Any], record_id: str, launch: int) -> int | None:
    """The pid of the process group running launch ``launch`` of a record (for tests and diagnostics)."""
    handle = read_marker(folder.launch_dir(record_id, launch) / _MARKER)
    return None if handle is None else handle.pid

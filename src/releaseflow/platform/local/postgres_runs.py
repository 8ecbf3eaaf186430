"""Backups and restores in the background: this process's tasks, and the records they fill in.

A request is recorded (``running``) before its task starts and answers at once; the task records how
it ended. A record whose process died is failed when it is next read, and ``stop`` fails the ones this
process was running, so no record stays ``running`` for good. The same class serves both kinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Generic

from releaseflow.platform.driver import DriverError
from releaseflow.platform.local.postgres_cluster import utcnow
from releaseflow.platform.local.postgres_records import (
    BackupStatus,
    RecordFolder,
    RecordT,
    mark_interrupted,
    orphaned,
)
from releaseflow.platform.local.postgres_tools import process_token

log = logging.getLogger(__name__)

INTERRUPTED_BY_STOP = "interrupted: releaseflow stopped while the {what} ran; start a new one"


class RecordRuns(Generic[RecordT]):
    """The records of one kind (backups or restores) and the tasks of this process that run them."""

    def __init__(self, folder: RecordFolder[RecordT], what: str) -> None:
        self.folder: RecordFolder[RecordT] = folder
        self.what = what  # "backup" or "restore", in messages
        self.lock = asyncio.Lock()  # held by a request from its key check to its new record
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._identity = (os.getpid(), process_token(os.getpid()))

    def fresh(self, record_id: str, **fields: Any) -> dict[str, Any]:
        """The fields of a new record: ``fields``, running, owned by this process."""
        return {
            **fields,
            "id": record_id,
            "status": BackupStatus.RUNNING,
            "started_at": utcnow(),
            "owner_pid": self._identity[0],
            "owner_token": self._identity[1],
        }

    async def settle_all(self) -> None:
        for record in await asyncio.to_thread(self.folder.all):
            await self.settle(record)

    async def stop(self) -> None:
        """Cancel this process's tasks; each record is failed (interrupted)."""
        tasks = dict(self._tasks)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        # A task cancelled before its first step never ran its own handler: its record is failed here.
        for record_id in tasks:
            record = self.folder.load(record_id)
            if record is not None and not record.finished:
                self.folder.save(self._failed(record, INTERRUPTED_BY_STOP.format(what=self.what)))

    async def earlier(
        self, record_id: str, same: Callable[[RecordT], bool], made: Callable[[RecordT], str]
    ) -> RecordT | None:
        """What an earlier request with the same idempotency key made; refused if it asked otherwise."""
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
            task = self._tasks.get(record_id)
            if task is None:
                await asyncio.sleep(0.1)  # run by another process: its record is all there is to watch
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout=max(0.0, deadline - time.monotonic()))

    async def launch(self, record: RecordT, work: Callable[[], Awaitable[RecordT]]) -> RecordT:
        """Create ``record`` and run ``work`` (it answers the finished record) in the background."""
        if not await asyncio.to_thread(self.folder.create, record):
            # Another process sharing this root took the same key a moment ago.
            return await self.get(record.id)
        task = asyncio.create_task(self._run(record, work), name=f"postgres-addon {record.id}")
        self._tasks[record.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(record.id, None))
        return record

    async def settle(self, record: RecordT) -> RecordT:
        """A running record whose process is gone is failed (interrupted): nobody will finish it."""
        if record.finished or record.id in self._tasks:
            return record
        if not orphaned(record.owner_pid, record.owner_token):
            return record
        settled = mark_interrupted(record, utcnow())
        await asyncio.to_thread(self.folder.save, settled)
        return settled

    async def _run(self, record: RecordT, work: Callable[[], Awaitable[RecordT]]) -> None:
        final: RecordT
        try:
            final = await work()
        except asyncio.CancelledError:
            final = self._failed(record, INTERRUPTED_BY_STOP.format(what=self.what))
            self.folder.save(final)
            raise
        except DriverError as error:
            final = self._failed(record, str(error))
        except Exception as error:
            log.exception("%s %s failed unexpectedly", self.what, record.id)
            final = self._failed(record, f"unexpected error: {error!r}")
        await asyncio.to_thread(self.folder.save, final)

    @staticmethod
    def _failed(record: RecordT, error: str) -> RecordT:
        return replace(record, status=BackupStatus.FAILED, error=error, ended_at=utcnow())

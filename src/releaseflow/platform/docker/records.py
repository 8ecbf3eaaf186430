"""What the docker driver remembers between calls and across restarts, and its background tasks.

Builds, deployments and job runs outlive the call that started them (and the worker process), so
each is a small JSON file under the driver's root; the engine's containers are the other half of
the truth, found again by their labels. Files are tiny and written atomically (write, then rename),
so plain synchronous I/O is used on purpose.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releaseflow.platform.driver import DriverError

LOGGER = logging.getLogger("releaseflow.platform.docker")

# Labels put on every container the driver makes, so it can find its own again.
LABEL_PREFIX = "io.releaseflow."
LABEL_MANAGED = LABEL_PREFIX + "managed-by"
LABEL_PROJECT = LABEL_PREFIX + "project"
LABEL_STAGE = LABEL_PREFIX + "stage"
LABEL_RESOURCE = LABEL_PREFIX + "resource"
LABEL_KIND = LABEL_PREFIX + "kind"
LABEL_RECORD = LABEL_PREFIX + "record"  # the deployment or job run the container belongs to

_UNSAFE = re.compile(r"[^a-z0-9_.-]+")


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def safe_name(*parts: str) -> str:
    """A name the engine accepts for containers and image repositories (lower case, no odd signs)."""
    text = "-".join(_UNSAFE.sub("-", part.lower()).strip("-.") for part in parts if part)
    return text or "releaseflow"


class Records:
    """JSON records of one kind, one file per id."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, record_id: str) -> Path:
        if not record_id or "/" in record_id or record_id.startswith("."):
            raise ValueError(f"not a record id: {record_id!r}")
        return self.directory / f"{record_id}.json"

    def load(self, record_id: str) -> dict[str, Any] | None:
        try:
            text = self._path(record_id).read_text()
        except (FileNotFoundError, ValueError):
            return None
        loaded = json.loads(text)
        return loaded if isinstance(loaded, dict) else None

    def save(self, record_id: str, record: Mapping[str, Any]) -> None:
        path = self._path(record_id)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record, indent=1, sort_keys=True))
        os.replace(temporary, path)

    def require(self, record_id: str, what: str) -> dict[str, Any]:
        """The record, or a clear non-retryable error naming ``what`` was asked for."""
        record = self.load(record_id)
        if record is None:
            raise DriverError(f"{what} '{record_id}' is unknown to this docker driver", retryable=False)
        return record

    def with_status(self, status: str) -> list[dict[str, Any]]:
        """Records in ``status`` (e.g. still running: after a restart nobody drives them)."""
        return [record for record in self.all() if record["status"] == status]

    def all(self) -> list[dict[str, Any]]:
        found = []
        for path in sorted(self.directory.glob("*.json")):
            record = self.load(path.stem)
            if record is not None:
                found.append(record)
        return found

    def log_path(self, record_id: str) -> Path:
        return self.directory / f"{record_id}.log"


class KeyIndex:
    """Idempotency keys already acted on, and what they made (so a repeated call does not act twice)."""

    def __init__(self, directory: Path) -> None:
        self._records = Records(directory)

    @staticmethod
    def _id(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()[:40]

    def get(self, key: str) -> dict[str, Any] | None:
        return self._records.load(self._id(key)) if key else None

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        if key:
            self._records.save(self._id(key), {"key": key, **value})


class Supervisor:
    """Background tasks by name: at most one per name, cancelled (not awaited to completion) at stop."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def ensure(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        task = self._tasks.get(name)
        if task is None or task.done():
            task = asyncio.create_task(self._guarded(name, factory), name=name)
            self._tasks[name] = task
        return task

    @staticmethod
    async def _guarded(name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            await factory()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Task bodies record their own failures; this only catches bugs, which must not vanish.
            LOGGER.exception("docker driver task %s failed unexpectedly", name)

    def running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    async def wait(self, name: str) -> None:
        task = self._tasks.get(name)
        if task is not None:
            await asyncio.shield(task)

    async def stop(self) -> None:
        tasks = [task for task in self._tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

"""Actions that leave nothing to adopt act once per idempotency key: recorded before they act.

A command executed in a running service, or a restart of an addon, leaves nothing a driver could find
again afterwards (no container, process or record of its own named after the key). So the driver
records the key *before* acting, and holds an ``flock`` on it while it acts; a later request with the
key then never acts again:

* the action finished: the same answer as the first time;
* its lock is held: the first request is acting right now (in this process or another): in progress,
  with a handle that ``KeyedActions.follow`` accepts;
* recorded, unfinished, and its lock free: the process acting died meanwhile, so whether the action
  took effect is unknown. Acting again could do it twice: the answer is FAILED, saying so (a new
  attempt, under a new key, is the engine's decision).

Records live in one folder per driver, ``<digest of the key>.json`` with its ``.lock`` beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releaseflow.domain.errors import describe_error
from releaseflow.platform.driver import AnswerState, DriverAnswer, DriverError
from releaseflow.platform.file_lock import open_lock, try_lock

HANDLE_KEY = "keyedAction"  # the handle of an action acting in another request: {HANDLE_KEY: key}
INTERRUPTED = (
    "interrupted: the releaseflow process that was doing {operation} under this idempotency key "
    "stopped before it finished; whether it took effect is unknown, so it is not done again under "
    "the same key"
)


class KeyedActions:
    """The actions of one driver that are recorded before they act (see the module's text)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def run(self, key: str, operation: str, act: Callable[[], Awaitable[DriverAnswer]]) -> DriverAnswer:
        """``act()`` once for ``key``; a repeat answers as the module's text says. No key: just act."""
        if not key:
            return await act()
        fd = open_lock(self._path(key, ".lock"))
        try:
            if not try_lock(fd):
                return _in_progress(key, operation)
            earlier = self._load(key)
            if earlier is not None:
                return _answer(earlier)
            self._save(key, {"key": key, "operation": operation, "startedAt": _now()})
            try:
                answer = await act()
            except DriverError as error:
                # It may have acted before it failed: recorded, so the key does not act again.
                failed = DriverAnswer(AnswerState.FAILED, message=str(error), retryable=error.retryable)
                self._finish(key, operation, failed)
                raise
            except Exception as error:
                failed = DriverAnswer(AnswerState.FAILED, message=describe_error(error))
                self._finish(key, operation, failed)
                raise
            self._finish(key, operation, answer)
            return answer
        finally:
            os.close(fd)  # releases the lock

    def follow(self, key: str) -> DriverAnswer:
        """The answer of the action recorded under ``key``, as a repeat with the key gets it."""
        fd = open_lock(self._path(key, ".lock"))
        try:
            record = self._load(key)
            if not try_lock(fd):
                return _in_progress(key, record.get("operation", "an action") if record else "an action")
            if record is None:
                raise DriverError("no action was recorded under this idempotency key", retryable=False)
            return _answer(record)
        finally:
            os.close(fd)

    def _finish(self, key: str, operation: str, answer: DriverAnswer) -> None:
        self._save(
            key,
            {
                "key": key,
                "operation": operation,
                "endedAt": _now(),
                "answer": {
                    "state": answer.state.value,
                    "data": dict(answer.data),
                    "message": answer.message,
                    "retryable": answer.retryable,
                },
            },
        )

    def _path(self, key: str, suffix: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:40] + suffix)

    def _load(self, key: str) -> dict[str, Any] | None:
        try:
            loaded = json.loads(self._path(key, ".json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return loaded if isinstance(loaded, dict) else None

    def _save(self, key: str, record: dict[str, Any]) -> None:
        path = self._path(key, ".json")
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(record, handle, default=str)
            handle.flush()
            os.fsync(handle.fileno())  # durable before the action starts: that is the point
        os.replace(temporary, path)


def _answer(record: dict[str, Any]) -> DriverAnswer:
    saved = record.get("answer")
    if not isinstance(saved, dict):
        operation = str(record.get("operation", "the action"))
        return DriverAnswer(AnswerState.FAILED, message=INTERRUPTED.format(operation=operation))
    return DriverAnswer(
        AnswerState(saved["state"]),
        dict(saved.get("data") or {}),
        str(saved["message"]),
        retryable=bool(saved.get("retryable", True)),
    )


def _in_progress(key: str, operation: str) -> DriverAnswer:
    message = f"{operation} under this idempotency key is being done by another request"
    return DriverAnswer(AnswerState.IN_PROGRESS, message=message, handle={HANDLE_KEY: key})


def _now() -> str:
    return datetime.now(UTC).isoformat()

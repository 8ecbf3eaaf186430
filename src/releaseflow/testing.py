"""Fakes shipped with the package, for unit tests of the engine: a scriptable driver and a clock.

A fake driver is for testing the engine's rhythm (success, failure, waiting, hanging); features that
act on infrastructure are tested against real drivers.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from releaseflow.platform.driver import AnswerState, DriverAnswer, DriverError, DriverRequest


@dataclass(frozen=True)
class Succeed:
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fail:
    message: str = "scripted failure"
    retryable: bool = True


@dataclass(frozen=True)
class InProgress:
    """Accepted; ``follow`` (or another ``perform`` for a check) reports done after ``polls`` looks."""

    polls: int = 1
    data: Mapping[str, Any] = field(default_factory=dict)
    then: Succeed | Fail = field(default_factory=Succeed)


@dataclass(frozen=True)
class Hang:
    """Never answers until cancelled (for aborts and lost leases)."""


Behaviour = Succeed | Fail | InProgress | Hang


class FakeDriver:
    """A driver whose answers are scripted per resource id; every call is recorded."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.started = False
        self.calls: list[DriverRequest] = []
        self.follows: list[DriverRequest] = []
        self.cancelled: list[DriverRequest] = []  # calls interrupted while they ran
        self.stopped: list[tuple[DriverRequest, Any]] = []  # waiting actions the engine asked to stop
        self._scripts: dict[str, list[Behaviour]] = defaultdict(list)
        self._in_progress: dict[str, list[Any]] = {}

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    def script(self, resource_id: str, *behaviours: Behaviour) -> None:
        """Answers for the next calls on ``resource_id``, in order; the last one repeats."""
        self._scripts[resource_id] = list(behaviours)

    def _next(self, resource_id: str) -> Behaviour:
        script = self._scripts.get(resource_id) or [Succeed()]
        return script.pop(0) if len(script) > 1 else script[0]

    async def perform(self, request: DriverRequest) -> DriverAnswer:
        self.calls.append(request)
        key = request.idempotency_key
        if key in self._in_progress:
            # A check polled again (Condition nodes poll by performing their check again).
            return self._look(key)
        behaviour = self._next(request.resource.id)
        if isinstance(behaviour, Hang):
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append(request)
                raise
        if isinstance(behaviour, InProgress):
            self._in_progress[key] = [behaviour.polls, behaviour.then]
            return DriverAnswer(AnswerState.IN_PROGRESS, data=dict(behaviour.data), handle={"key": key})
        return self._final(behaviour)

    async def follow(self, request: DriverRequest, handle: Any) -> DriverAnswer:
        self.follows.append(request)
        key = handle["key"] if isinstance(handle, dict) and "key" in handle else request.idempotency_key
        if key not in self._in_progress:
            raise DriverError(f"fake driver: nothing in progress for {key}", retryable=False)
        return self._look(key)

    def _look(self, key: str) -> DriverAnswer:
        entry = self._in_progress[key]
        entry[0] -= 1
        if entry[0] > 0:
            return DriverAnswer(AnswerState.IN_PROGRESS, handle={"key": key})
        del self._in_progress[key]
        return self._final(entry[1])

    @staticmethod
    def _final(behaviour: Any) -> DriverAnswer:
        if isinstance(behaviour, Fail):
            if not behaviour.retryable:
                raise DriverError(behaviour.message, retryable=False)
            return DriverAnswer(AnswerState.FAILED, message=behaviour.message)
        assert isinstance(behaviour, Succeed)
        return DriverAnswer(AnswerState.DONE, data=dict(behaviour.data))

    async def cancel(self, request: DriverRequest, handle: Any) -> str:
        self.stopped.append((request, handle))
        return f"fake: stopped {request.operation.value} on {request.resource.id}"

    def calls_on(self, resource_id: str) -> list[DriverRequest]:
        return [call for call in self.calls if call.resource.id == resource_id]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

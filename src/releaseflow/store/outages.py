"""Riding out database outages: which failures are worth another try, and how long to wait before it.

A PostgreSQL restart, a dropped connection, a serialization failure or a deadlock, SQLite's busy and
locked errors: these pass, and the work that met them is tried again after a pause. Each backend
classifies its own errors (``Database.is_transient``); anything else is a bug, and is raised.

Pauses grow exponentially up to a bound, with jitter, so that the workers that lost the server at the
same moment do not all come back at the same moment, and none spins while it is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from releaseflow.store.database import Database, describe

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Delay before the n-th retry: ``initial * factor**(n-1)``, at most ``maximum``, jittered down by
    up to half ("equal jitter": never zero, so a retry loop cannot spin)."""

    initial: float = 0.05
    maximum: float = 2.0
    factor: float = 2.0
    random: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, failures: int) -> float:
        exponent = min(max(failures - 1, 0), 64)  # large enough to reach any maximum, small enough to compute
        cap = min(self.maximum, self.initial * self.factor**exponent)
        return cap * (0.5 + self.random() / 2)


# Loops that poll the database (claim, heartbeat, reaper) and recorders of answers use this one.
DEFAULT_BACKOFF = Backoff()


class FailureStreak:
    """Counts the consecutive transient failures of one repeated piece of database work.

    ``failed(error)`` re-raises an error that is not transient (a bug: the caller must not carry on as
    if nothing happened) and otherwise returns how long to wait before the next try; ``succeeded()``
    ends the streak. The first failure and the recovery are logged as warnings, the rest quietly.
    """

    def __init__(self, db: Database, what: str, backoff: Backoff = DEFAULT_BACKOFF) -> None:
        self.db = db
        self.what = what
        self.backoff = backoff
        self.failures = 0

    def failed(self, error: Exception) -> float:
        if not self.db.is_transient(error):
            raise error
        self.failures += 1
        delay = self.backoff.delay(self.failures)
        level = logging.WARNING if self.failures == 1 else logging.DEBUG
        log.log(level, "%s failed (%s); trying again", self.what, describe(error))
        return delay

    def succeeded(self) -> None:
        if self.failures:
            log.warning("%s works again after %d failed tries", self.what, self.failures)
        self.failures = 0


async def pause(seconds: float, stop: asyncio.Event | None = None) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def retry_transient(
    db: Database,
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    keep_trying: Callable[[float], bool] | None = None,
    stop: asyncio.Event | None = None,
    backoff: Backoff = DEFAULT_BACKOFF,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> T:
    """Run ``operation`` until it succeeds, pausing after each transient failure.

    Gives up, raising the last error, when ``keep_trying(next delay)`` says no or ``stop`` is set;
    errors that are not transient are raised at once.
    """
    streak = FailureStreak(db, what, backoff)
    while True:
        try:
            result = await operation()
        except Exception as error:
            delay = streak.failed(error)
            if (keep_trying is not None and not keep_trying(delay)) or (stop is not None and stop.is_set()):
                raise
            await (sleep(delay) if sleep is not None else pause(delay, stop))
            continue
        streak.succeeded()
        return result

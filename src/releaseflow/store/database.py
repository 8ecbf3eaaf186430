"""The database seen by the rest of releaseflow: transactions of plain SQL, on SQLite or PostgreSQL.

SQL is written once, in the dialect both servers share, with ``?`` placeholders; the PostgreSQL
backend rewrites them. Rows come back as dicts. Wake-ups ("something became due") travel with the
commit: LISTEN/NOTIFY across processes on PostgreSQL, an in-process event on SQLite.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from releaseflow.domain.errors import Issue, ValidationError, describe_error

Row = dict[str, Any]
Params = Sequence[Any]
Dialect = Literal["sqlite", "postgresql"]


def to_epoch(moment: datetime | None) -> float | None:
    """Timestamps are stored as UTC epoch seconds: comparable and indexable on both databases."""
    return None if moment is None else moment.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def with_times(row: Row, keys: Sequence[str]) -> Row:
    """``row`` with the epoch seconds under ``keys`` turned into moments."""
    return {**row, **{key: from_epoch(row[key]) for key in keys}}


class Transaction(abc.ABC):
    """One database transaction. Commits when its block ends normally, rolls back otherwise."""

    dialect: Dialect

    def __init__(self) -> None:
        self.wake_requested = False
        # Append-only rows (the event log) written in one batch when the transaction commits: a
        # state change then costs one round trip, not two. Nothing reads them back before commit.
        self._deferred: dict[str, list[Params]] = {}

    def defer_insert(self, sql: str, params: Params) -> None:
        """Queue an INSERT that nothing in this transaction reads; it is written before commit."""
        self._deferred.setdefault(sql, []).append(params)

    async def flush_deferred(self) -> None:
        deferred, self._deferred = self._deferred, {}
        for sql, rows in deferred.items():
            if len(rows) == 1:
                await self.execute(sql, rows[0])
            else:
                await self.executemany(sql, rows)

    @abc.abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; returns the number of rows it changed."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement for each parameter row."""

    @abc.abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchvalue(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else next(iter(row.values()))

    @abc.abstractmethod
    async def lock_row(self, table: str, key_column: str, key: Any) -> None:
        """Serialise writers of one row (a run, a release flow) until this transaction ends."""

    def wake_workers(self) -> None:
        """Ask workers to look for due work once this transaction commits."""
        self.wake_requested = True


def unstorable(problem: str) -> ValidationError:
    """A value the database cannot hold (a NUL character in text on PostgreSQL, an integer beyond 64
    bits on SQLite): whoever sent it made a mistake, which must be answered as such (a 400 over HTTP),
    never as an internal error. Each backend turns its own refusal into this one."""
    return ValidationError([Issue("", problem)], subject="a value given")


def describe(error: BaseException) -> str:
    """``describe_error`` on one line, for logs and /healthz (a server's message spans lines)."""
    return " ".join(describe_error(error).split())


@dataclass(frozen=True)
class Outage:
    """The database stopped answering: since when (the first failure of a streak), and the last error."""

    since: datetime
    error: str


class Database(abc.ABC):
    dialect: Dialect
    url: str

    def __init__(self) -> None:
        self._wakeup = asyncio.Event()
        # Set by a transaction that failed for a transient reason, cleared by the next that commits:
        # what /healthz reports as "degraded".
        self.outage: Outage | None = None

    @abc.abstractmethod
    def is_transient(self, error: BaseException) -> bool:
        """Whether ``error`` is the database being away or busy (worth a retry) rather than a bug."""

    def is_conflict(self, error: BaseException) -> bool:
        """Whether the database ended the transaction to settle a conflict with another one (a
        deadlock, a serialization failure): it was rolled back whole, so running it again is safe."""
        return False

    def note_failure(self, error: BaseException) -> None:
        """Called by the backends when a transaction failed; remembers transient failures."""
        if self.is_transient(error):
            since = self.outage.since if self.outage is not None else datetime.now(UTC)
            self.outage = Outage(since=since, error=describe(error))

    def note_success(self) -> None:
        self.outage = None

    def listener(self) -> asyncio.Task[None] | None:
        """The task receiving wake-ups from other processes, if any: it must not end while in use."""
        return None

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """``async with db.transaction() as tx:`` — a read-write transaction."""

    def read(self) -> AbstractAsyncContextManager[Transaction]:
        """A transaction that only reads (cheaper where the backend can tell)."""
        return self.transaction()

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def start_listening(self) -> None:
        """Begin receiving wake-ups from other processes."""

    def wake_local(self) -> None:
        """Wake this process's workers (e.g. a worker slot became free)."""
        self._wakeup.set()

    async def wait_for_wakeup(self, timeout: float) -> bool:
        """Sleep until a committed transaction asked to wake workers, or ``timeout`` seconds pass."""
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout=max(timeout, 0.0))
        except TimeoutError:
            return False
        self._wakeup.clear()
        return True


async def open_database(url: str) -> Database:
    """Open the database a URL names: ``sqlite:///path/to/file.db`` or ``postgresql://...``."""
    from releaseflow.domain.errors import ReleaseflowError

    if url.startswith("sqlite:"):
        from releaseflow.store.sqlite import SqliteDatabase

        return await SqliteDatabase.open(url)
    if url.startswith(("postgresql:", "postgres:")):
        from releaseflow.store.postgres import PostgresDatabase

        return await PostgresDatabase.open(url)
    raise ReleaseflowError(f"unsupported database URL '{url}': use sqlite:///PATH or postgresql://...")

"""PostgreSQL backend: many worker processes share one database.

Wake-ups use LISTEN/NOTIFY so a node made due by one process is claimed at once by another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from releaseflow.domain.errors import ReleaseflowError
from releaseflow.store.database import Database, Params, Row, Transaction, describe, unstorable
from releaseflow.store.outages import FailureStreak, pause

log = logging.getLogger(__name__)

WAKE_CHANNEL = "releaseflow_wake"
_PLACEHOLDER = re.compile(r"\?")

# SQLSTATEs of failures that pass: connection exceptions (class 08), insufficient resources (53: too
# many connections, out of memory or disk), serialization failure, deadlock, "statement completion
# unknown" (the connection dropped during COMMIT), a read-only transaction (a fail-over in progress),
# and the server shutting down or starting up.
_TRANSIENT_CLASSES = frozenset({"08", "53"})
_TRANSIENT_STATES = frozenset({"40001", "40P01", "40003", "25006", "57P01", "57P02", "57P03"})
# A serialization failure or a deadlock: the transaction lost a conflict with another one.
_CONFLICT_STATES = frozenset({"40001", "40P01"})

# How long a transaction waits for a pooled connection before it fails (transiently) and is retried.
POOL_WAIT_SECONDS = 5.0
# How long the pool keeps retrying one lost connection on its own, with its own growing delay; after
# that it gives up and the next transaction asks for a fresh one. Kept short so that a long outage
# does not leave the pool waiting minutes after the server is back.
POOL_RECONNECT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 10


def is_transient_error(error: BaseException) -> bool:
    if not isinstance(error, psycopg.OperationalError):
        return False
    # No SQLSTATE: the client lost the connection, could not connect, or the pool timed out.
    state = error.sqlstate
    return state is None or state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES


def _to_pyformat(sql: str) -> str:
    # Our SQL uses ?; psycopg wants %s. No statement of ours has a literal ? or %.
    return _PLACEHOLDER.sub("%s", sql)


@contextlib.contextmanager
def _refusing_unstorable() -> Iterator[None]:
    """PostgreSQL's refusals of a value it cannot hold, as the store's one error for them."""
    try:
        yield
    except psycopg.errors.NumericValueOutOfRange:
        raise unstorable("a number is out of range (integers are at most 64 bits)") from None
    except psycopg.DataError as error:
        # Raised by psycopg before anything is sent: text goes to PostgreSQL NUL-terminated.
        if "NUL" not in str(error):
            raise
        raise unstorable(
            "text holds a NUL character (U+0000), which no name, id or text may contain"
        ) from None


class PostgresTransaction(Transaction):
    dialect = "postgresql"

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        super().__init__()
        self._connection = connection

    async def execute(self, sql: str, params: Params = ()) -> int:
        with _refusing_unstorable():
            cursor = await self._connection.execute(_to_pyformat(sql), tuple(params), prepare=True)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        with _refusing_unstorable():
            async with self._connection.cursor() as cursor:
                await cursor.executemany(_to_pyformat(sql), [tuple(row) for row in rows])

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = self._connection.cursor(row_factory=dict_row)
        with _refusing_unstorable():
            await cursor.execute(_to_pyformat(sql), tuple(params), prepare=True)
        return await cursor.fetchall()

    async def lock_row(self, table: str, key_column: str, key: Any) -> None:
        await self._connection.execute(
            f"SELECT 1 FROM {table} WHERE {key_column} = %s FOR UPDATE", (key,), prepare=True
        )


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, pool: AsyncConnectionPool) -> None:
        super().__init__()
        self.url = url
        self._pool = pool
        self._listener: asyncio.Task[None] | None = None
        self._checking = False

    @classmethod
    async def open(cls, url: str, *, max_size: int = 10) -> PostgresDatabase:
        pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=POOL_WAIT_SECONDS,
            reconnect_timeout=POOL_RECONNECT_SECONDS,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )
        try:
            await pool.open(wait=True, timeout=15)
        except (psycopg.Error, Exception) as error:
            await pool.close()
            raise ReleaseflowError(f"cannot connect to PostgreSQL at '{_redact(url)}': {error}") from error
        return cls(url, pool)

    def is_transient(self, error: BaseException) -> bool:
        return is_transient_error(error)

    def is_conflict(self, error: BaseException) -> bool:
        return isinstance(error, psycopg.OperationalError) and error.sqlstate in _CONFLICT_STATES

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        try:
            async with self._pool.connection() as connection, connection.transaction():
                tx = PostgresTransaction(connection)
                yield tx
                await tx.flush_deferred()
                if tx.wake_requested:
                    await connection.execute(f"NOTIFY {WAKE_CHANNEL}")
        except Exception as error:
            self.note_failure(error)
            if self.is_transient(error):
                await self._check_pool()
            raise
        self.note_success()
        if tx.wake_requested:
            self.wake_local()

    async def _check_pool(self) -> None:
        # After a restart every idle pooled connection is dead; each would fail one transaction in
        # turn. Testing them once now discards them all (the pool opens new ones).
        if self._checking:
            return
        self._checking = True
        try:
            await self._pool.check()
        except Exception as error:  # the pool is closing, or the server is still away: the next try tells
            log.debug("checking the connection pool failed: %s", describe(error))
        finally:
            self._checking = False

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        return self._transaction()

    async def start_listening(self) -> None:
        if self._listener is None:
            ready = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(ready))
            await asyncio.wait_for(ready.wait(), timeout=15)

    def listener(self) -> asyncio.Task[None] | None:
        return self._listener

    async def _listen(self, ready: asyncio.Event) -> None:
        # A dedicated autocommit connection: a pooled one would lose the LISTEN when returned.
        streak = FailureStreak(self, "listening for wake-ups")
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
                ) as connection:
                    await connection.execute(f"LISTEN {WAKE_CHANNEL}")
                    streak.succeeded()
                    ready.set()
                    # Wake-ups sent while we were away are lost: look for due work now.
                    self.wake_local()
                    async for _ in connection.notifies():
                        self.wake_local()
            except Exception as error:
                # Transient: the server went away; workers still poll meanwhile. Else raised: a bug.
                delay = streak.failed(error)
                ready.set()
                await pause(delay)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._pool.close()


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)

"""PostgreSQL backend: many worker processes share one database.

Wake-ups use LISTEN/NOTIFY so a node made due by one process is claimed at once by another.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from releaseflow.domain.errors import ReleaseflowError
from releaseflow.store.database import Database, Params, Row, Transaction

WAKE_CHANNEL = "releaseflow_wake"
_PLACEHOLDER = re.compile(r"\?")


def _to_pyformat(sql: str) -> str:
    # Our SQL uses ?; psycopg wants %s. No statement of ours has a literal ? or %.
    return _PLACEHOLDER.sub("%s", sql)


class PostgresTransaction(Transaction):
    dialect = "postgresql"

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        super().__init__()
        self._connection = connection

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self._connection.execute(_to_pyformat(sql), tuple(params), prepare=True)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        async with self._connection.cursor() as cursor:
            await cursor.executemany(_to_pyformat(sql), [tuple(row) for row in rows])

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = self._connection.cursor(row_factory=dict_row)
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

    @classmethod
    async def open(cls, url: str, *, max_size: int = 10) -> PostgresDatabase:
        pool = AsyncConnectionPool(url, min_size=1, max_size=max_size, open=False, timeout=30)
        try:
            await pool.open(wait=True, timeout=15)
        except (psycopg.Error, Exception) as error:
            await pool.close()
            raise ReleaseflowError(f"cannot connect to PostgreSQL at '{_redact(url)}': {error}") from error
        return cls(url, pool)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        async with self._pool.connection() as connection, connection.transaction():
            tx = PostgresTransaction(connection)
            yield tx
            await tx.flush_deferred()
            if tx.wake_requested:
                await connection.execute(f"NOTIFY {WAKE_CHANNEL}")
        if tx.wake_requested:
            self.wake_local()

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        return self._transaction()

    async def start_listening(self) -> None:
        if self._listener is None:
            ready = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(ready))
            await asyncio.wait_for(ready.wait(), timeout=15)

    async def _listen(self, ready: asyncio.Event) -> None:
        # A dedicated autocommit connection: a pooled one would lose the LISTEN when returned.
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as connection:
                    await connection.execute(f"LISTEN {WAKE_CHANNEL}")
                    ready.set()
                    async for _ in connection.notifies():
                        self.wake_local()
            except psycopg.Error:
                # The server went away; workers still poll, so retry quietly.
                ready.set()
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._pool.close()


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)

"""SQLite backend: the embedded default. WAL mode; one process, writers serialised in-process."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import aiosqlite

from releaseflow.domain.errors import ReleaseflowError
from releaseflow.store.database import Database, Params, Row, Transaction
from releaseflow.store.files import narrow, private_directory, private_file

# SQLITE_BUSY and SQLITE_LOCKED (the low byte of extended codes such as SQLITE_BUSY_SNAPSHOT): another
# connection holds a lock for longer than the busy timeout. It passes; the work is tried again.
_BUSY_CODES = frozenset({5, 6})
# How long a statement waits for another process's lock before failing with SQLITE_BUSY.
BUSY_TIMEOUT_SECONDS = 10.0


def is_transient_error(error: BaseException) -> bool:
    if not isinstance(error, sqlite3.OperationalError):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    return "locked" in str(error) or "busy" in str(error)


class SqliteTransaction(Transaction):
    dialect = "sqlite"

    def __init__(self, connection: aiosqlite.Connection) -> None:
        super().__init__()
        self._connection = connection

    async def execute(self, sql: str, params: Params = ()) -> int:
        # One trip to aiosqlite's thread per statement: each trip costs far more than the statement.
        cursor = await self._connection.execute(sql, tuple(params))
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        await self._connection.executemany(sql, [tuple(row) for row in rows])

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        rows = await self._connection.execute_fetchall(sql, tuple(params))
        return [dict(row) for row in rows]

    async def lock_row(self, table: str, key_column: str, key: object) -> None:
        # BEGIN IMMEDIATE already holds the database's single write lock.
        return None


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, url: str, connection: aiosqlite.Connection) -> None:
        super().__init__()
        self.url = url
        self._connection = connection
        # One connection, one transaction at a time: SQLite has a single writer anyway, and
        # serialising here avoids SQLITE_BUSY between coroutines of this process.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> SqliteDatabase:
        # sqlite:///abs/path.db names /abs/path.db; sqlite://rel/path.db a path relative to the cwd.
        path = url.removeprefix("sqlite:").removeprefix("//")
        if path != ":memory:":
            # The database holds secrets (the seed of fn.randomSecret): private from the first byte.
            try:
                private_directory(Path(path).parent)
                private_file(Path(path))
                for journal in ("-wal", "-shm"):
                    narrow(Path(path + journal))
            except OSError as error:
                raise ReleaseflowError(f"cannot create SQLite database '{path}': {error}") from error
        try:
            connection = await aiosqlite.connect(path, isolation_level=None)
            connection.row_factory = sqlite3.Row
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
            await connection.execute("PRAGMA foreign_keys=ON")
            # Another process (the CLI beside a running server) may hold the write lock briefly.
            await connection.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        except sqlite3.Error as error:
            raise ReleaseflowError(f"cannot open SQLite database '{path}': {error}") from error
        return cls(url, connection)

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        # IMMEDIATE takes the write lock up front, so a transaction never fails half-way on upgrade.
        return self._transaction("BEGIN IMMEDIATE")

    def read(self) -> AbstractAsyncContextManager[Transaction]:
        return self._transaction("BEGIN")

    def is_transient(self, error: BaseException) -> bool:
        return is_transient_error(error)

    @asynccontextmanager
    async def _transaction(self, begin: str) -> AsyncIterator[Transaction]:
        async with self._lock:
            tx = SqliteTransaction(self._connection)
            try:
                await self._connection.execute(begin)
                yield tx
                await tx.flush_deferred()
                await self._connection.execute("COMMIT")
            except BaseException as error:
                # Never leave the connection inside a transaction: not when COMMIT failed (busy), nor
                # when the caller was cancelled while BEGIN ran (it may have begun all the same).
                with contextlib.suppress(sqlite3.Error):
                    await self._connection.execute("ROLLBACK")
                self.note_failure(error)
                raise
        self.note_success()
        if tx.wake_requested:
            self.wake_local()

    async def start_listening(self) -> None:
        # SQLite serves one process: wake-ups are in-process only.
        return None

    async def close(self) -> None:
        await self._connection.close()

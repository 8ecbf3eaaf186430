"""SQLite backend: the embedded default. WAL mode; one process, writers serialised in-process."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from releaseflow.domain.errors import ReleaseflowError
from releaseflow.store.database import Database, Params, Row, Transaction, unstorable
from releaseflow.store.files import narrow, private_directory, private_file

# SQLITE_BUSY and SQLITE_LOCKED (the low byte of extended codes such as SQLITE_BUSY_SNAPSHOT): another
# connection holds a lock for longer than the busy timeout. It passes; the work is tried again.
_BUSY_CODES = frozenset({5, 6})
T = TypeVar("T")
_LARGEST_INTEGER = 2**63 - 1
# How long a statement waits for another process's lock before failing with SQLITE_BUSY.
BUSY_TIMEOUT_SECONDS = 10.0


def is_transient_error(error: BaseException) -> bool:
    if not isinstance(error, sqlite3.OperationalError):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    return "locked" in str(error) or "busy" in str(error)


class ConnectionThread:
    """A SQLite connection and the one thread that uses it: the event loop never waits on the disk.

    Each call is one trip to the thread, and a trip costs far more than a statement of the engine: so
    a transaction's BEGIN travels with its first statement and its COMMIT with its last writes
    (``SqliteTransaction``). Calls run one at a time, in order.
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._connection: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._serve, name="releaseflow-sqlite", daemon=True)
        self._thread.start()

    async def call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def connected(connection: sqlite3.Connection | None) -> T:
            if connection is None:
                raise sqlite3.ProgrammingError("the SQLite connection is closed")
            return work(connection)

        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls.put((future, connected))
        return await future

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            future, work = call
            try:
                result = work(self._connection)
            except BaseException as error:
                future.get_loop().call_soon_threadsafe(_settle, future, None, error)
            else:
                future.get_loop().call_soon_threadsafe(_settle, future, result, None)

    async def open(self, path: str) -> None:
        def connect(_: object) -> None:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            connection.row_factory = sqlite3.Row
            self._connection = connection

        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._calls.put((future, connect))
        await future

    async def close(self) -> None:
        def close(connection: sqlite3.Connection) -> None:
            connection.close()
            self._connection = None

        try:
            if self._connection is not None:
                await self.call(close)
        finally:
            self._calls.put(None)
            await asyncio.to_thread(self._thread.join)


_Call = tuple["asyncio.Future[Any]", Callable[[Any], Any]]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return  # the caller was cancelled meanwhile
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class SqliteTransaction(Transaction):
    dialect = "sqlite"

    def __init__(self, thread: ConnectionThread, begin: str) -> None:
        super().__init__()
        self._thread = thread
        self._begin: str | None = begin  # sent with the first statement
        self.begun = False  # BEGIN was sent: the transaction must end with COMMIT or ROLLBACK

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        begin, self._begin = self._begin, None
        try:
            if begin is None:
                return await self._thread.call(work)
            self.begun = True

            def begin_then(connection: sqlite3.Connection) -> T:
                connection.execute(begin)
                return work(connection)

            return await self._thread.call(begin_then)
        except OverflowError:
            # sqlite3 binds integers as 64-bit; a larger one (an id or a version in a request) can
            # match no row and be stored nowhere.
            raise unstorable(
                f"an integer beyond 64 bits (more than {_LARGEST_INTEGER}) is out of range"
            ) from None

    async def execute(self, sql: str, params: Params = ()) -> int:
        values = tuple(params)
        return await self._call(lambda connection: connection.execute(sql, values).rowcount)

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        values = [tuple(row) for row in rows]
        await self._call(lambda connection: connection.executemany(sql, values))

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        values = tuple(params)
        return await self._call(
            lambda connection: [dict(row) for row in connection.execute(sql, values).fetchall()]
        )

    async def lock_row(self, table: str, key_column: str, key: object) -> None:
        # BEGIN IMMEDIATE already holds the database's single write lock.
        return None

    async def commit(self) -> None:
        """The deferred inserts and COMMIT in one trip (nothing at all when nothing was asked)."""
        deferred, self._deferred = self._deferred, {}
        if not deferred and not self.begun:
            return

        def write_and_commit(connection: sqlite3.Connection) -> None:
            for sql, rows in deferred.items():
                connection.executemany(sql, [tuple(row) for row in rows])
            connection.execute("COMMIT")

        await self._call(write_and_commit)

    async def rollback(self) -> None:
        if self.begun:
            # sqlite3.Error: there was no transaction any more (a failed COMMIT ends it).
            with contextlib.suppress(sqlite3.Error):
                await self._thread.call(lambda connection: connection.execute("ROLLBACK"))


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, url: str, thread: ConnectionThread) -> None:
        super().__init__()
        self.url = url
        self._thread = thread
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
        thread = ConnectionThread()
        try:
            await thread.open(path)

            def configure(connection: sqlite3.Connection) -> None:
                connection.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode: a commit survives a crash of releaseflow; only a power loss may
                # take the last commits back (the database stays consistent).
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute("PRAGMA foreign_keys=ON")
                # Another process (the CLI beside a running server) may hold the write lock briefly.
                connection.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")

            await thread.call(configure)
        except sqlite3.Error as error:
            await thread.close()
            raise ReleaseflowError(f"cannot open SQLite database '{path}': {error}") from error
        return cls(url, thread)

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
            tx = SqliteTransaction(self._thread, begin)
            try:
                yield tx
                await tx.commit()
            except BaseException as error:
                # Never leave the connection inside a transaction: not when COMMIT failed (busy), nor
                # when the caller was cancelled while BEGIN ran (it may have begun all the same).
                await tx.rollback()
                self.note_failure(error)
                raise
        self.note_success()
        if tx.wake_requested:
            self.wake_local()

    async def start_listening(self) -> None:
        # SQLite serves one process: wake-ups are in-process only.
        return None

    async def close(self) -> None:
        await self._thread.close()

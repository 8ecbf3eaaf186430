"""Which database errors are transient, how long to wait before a retry, and when a retry gives up."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg import errors
from psycopg_pool import PoolTimeout

from releaseflow.store import postgres, sqlite
from releaseflow.store.database import Database
from releaseflow.store.outages import Backoff, retry_transient
from releaseflow.store.sqlite import SqliteDatabase


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        errors.AdminShutdown("terminating connection due to administrator command"),
        errors.CannotConnectNow("the database system is starting up"),
        errors.SerializationFailure("could not serialize access"),
        errors.DeadlockDetected("deadlock detected"),
        errors.TooManyConnections("too many clients"),
        PoolTimeout("couldn't get a connection after 5.00 sec"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_postgres_errors__of_an_outage_are_transient(error: Exception) -> None:
    assert postgres.is_transient_error(error)


@pytest.mark.parametrize(
    "error",
    [
        errors.UndefinedTable("relation does not exist"),
        errors.UniqueViolation("duplicate key"),
        errors.ProgramLimitExceeded("index row size exceeds maximum"),
        errors.SyntaxError("syntax error"),
        RuntimeError("a bug"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_postgres_errors__of_a_bug_are_not_transient(error: Exception) -> None:
    assert not postgres.is_transient_error(error)


def test_sqlite_errors__busy_and_locked_are_transient_and_others_not(
    tmp_path: pytest.TempPathFactory,
) -> None:
    path = f"{tmp_path}/locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as busy:
        other.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as missing:
        other.execute("SELECT * FROM nowhere")
    holder.close()
    other.close()

    assert sqlite.is_transient_error(busy.value)
    assert sqlite.is_transient_error(sqlite3.OperationalError("database table is locked"))
    assert not sqlite.is_transient_error(missing.value)
    assert not sqlite.is_transient_error(sqlite3.IntegrityError("UNIQUE constraint failed"))


def test_backoff__grows_to_its_bound_with_jitter_never_zero() -> None:
    low, high = Backoff(random=lambda: 0.0), Backoff(random=lambda: 1.0)

    assert [high.delay(n) for n in (1, 2, 3)] == [0.05, 0.1, 0.2]
    assert [low.delay(n) for n in (1, 2, 3)] == [0.025, 0.05, 0.1]
    assert high.delay(10) == high.maximum == 2.0
    assert low.delay(10_000) == 1.0


class Script:
    """An operation that raises the given errors in turn, then answers."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = await SqliteDatabase.open("sqlite::memory:")
    yield database
    await database.close()


BUSY = sqlite3.OperationalError("database is locked")


async def test_retry_transient__retries_transient_failures_after_growing_pauses(db: Database) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    operation = Script(BUSY, BUSY, BUSY)
    result = await retry_transient(
        db, operation, what="test", backoff=Backoff(random=lambda: 1.0), sleep=sleep
    )

    assert (result, operation.calls) == ("done", 4)
    assert slept == [0.05, 0.1, 0.2]


async def test_retry_transient__raises_a_bug_at_once(db: Database) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    operation = Script(sqlite3.OperationalError("no such table: nodes"))
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await retry_transient(db, operation, what="test", sleep=sleep)
    assert (operation.calls, slept) == (1, [])


async def test_retry_transient__gives_up_when_told_with_the_last_error(db: Database) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    operation = Script(BUSY, BUSY, BUSY)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await retry_transient(db, operation, what="test", keep_trying=lambda _: len(slept) < 1, sleep=sleep)
    assert (operation.calls, len(slept)) == (2, 1)

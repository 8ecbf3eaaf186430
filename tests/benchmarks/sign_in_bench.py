"""``python -m tests.benchmarks.sign_in_bench [--repeat 40]``: what user accounts cost.

On SQLite (a temporary file) and PostgreSQL (a throwaway cluster, or the server named by
RELEASEFLOW_TEST_POSTGRES_URL), through the engine's own functions: a sign-in with the right password
(scrypt, the failure streak read, the session written), a refusal for a wrong password and one for an
unknown name (the two should cost the same: an unknown name is checked against a decoy hash), and the
session check every web request makes. Prints the median and nearest-rank p95 of each. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.benchmarks.api_bench import percentile
from tests.postgres_cluster import throwaway_database

from releaseflow.domain.access import Grant, Role, Unauthenticated
from releaseflow.engine import user_sessions, users
from releaseflow.store.database import open_database
from releaseflow.store.migrate import migrate

PASSWORD = "correct horse battery"


class MovingClock:
    """Wall time, plus a jump the benchmark makes so that a lock from its own failures is over."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def _timed(repeat: int, action: Callable[[], Awaitable[object]]) -> list[float]:
    took = []
    for _ in range(repeat):
        began = time.perf_counter()
        with contextlib.suppress(Unauthenticated):  # the refusals are what two of the cases measure
            await action()
        took.append(time.perf_counter() - began)
    return took


async def bench(database: str, url: str, repeat: int) -> list[str]:
    db = await open_database(url)
    clock = MovingClock()
    try:
        await migrate(db)
        await users.create_user(
            db, clock, name="dana", password=PASSWORD, grants=[Grant("*", Role.DEPLOYER)], created_by="bench"
        )
        signed = await user_sessions.sign_in(db, clock, "dana", PASSWORD)

        async def wrong_password() -> object:
            clock.offset += timedelta(hours=1)  # past any lock the earlier failures set
            return await users.authenticate(db, clock, "dana", "not the password")

        async def unknown_name() -> object:
            clock.offset += timedelta(hours=1)
            return await users.authenticate(db, clock, "nobody", PASSWORD)

        cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("sign in (right password)", lambda: user_sessions.sign_in(db, clock, "dana", PASSWORD)),
            ("refuse a wrong password", wrong_password),
            ("refuse an unknown name", unknown_name),
            ("check a session (each request)", lambda: user_sessions.authenticate(db, clock, signed.secret)),
        ]
        rows = []
        for what, action in cases:
            took = await _timed(repeat, action)
            p50, p95 = (percentile(took, share) * 1000 for share in (0.5, 0.95))
            rows.append(f"| {database} | {what} | {repeat} | {p50:.2f} | {p95:.2f} |")
        return rows
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.sign_in_bench")
    parser.add_argument("--repeat", type=int, default=40, help="times each operation runs (default 40)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rf-sign-in-bench-") as folder:
        rows = asyncio.run(bench("sqlite", f"sqlite://{Path(folder)}/bench.db", args.repeat))
    with throwaway_database() as url:
        rows += asyncio.run(bench("postgresql", url, args.repeat))
    print("| database | operation | times | p50 ms | p95 ms |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""What the engine says about the chain's runs, read through its read model from outside the processes.

The observer keeps its own connection to the installation's database (SQLite readers do not stop a
writer; a PostgreSQL connection cut by a restart is dropped and opened again on the next read), so it
reads across kills and restarts of every releaseflow process; while the database is away it answers
None.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, TypeVar

from tests.acceptance.support import Releaseflow
from tests.chaos.project import PIPELINE, PROJECT, STAGE

from releaseflow.engine import queries
from releaseflow.settings import Settings
from releaseflow.store.database import Database, open_database

T = TypeVar("T")
TERMINAL = frozenset({"success", "failed", "aborted"})


@dataclass(frozen=True)
class NodeAttempts:
    run_id: str
    ref: str
    status: str
    attempt_log: tuple[Mapping[str, Any], ...]


class Observer:
    def __init__(self, installation: Releaseflow) -> None:
        self.settings = Settings.from_env(installation.env())
        self._loop = asyncio.new_event_loop()
        self._db: Database | None = None

    def _read(self, query: Callable[[Database], Awaitable[T]]) -> T | None:
        async def read() -> T:
            if self._db is None:
                self._db = await open_database(self.settings.database_url)
            return await query(self._db)

        try:
            return self._loop.run_until_complete(read())
        except Exception as error:
            if not _database_away(error):
                raise
            self._drop()
            return None

    def _drop(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):  # its server went away: nothing left to close cleanly
                self._loop.run_until_complete(db.close())

    def close(self) -> None:
        self._drop()
        self._loop.close()

    def statuses(self, run_ids: Iterable[str]) -> dict[str, str] | None:
        """The status of each of these runs, or None while the database cannot be read."""
        wanted = set(run_ids)

        async def query(db: Database) -> dict[str, str]:
            runs = await queries.list_runs(db, PROJECT, PIPELINE, STAGE, limit=len(wanted) + 10_000)
            return {run.id: str(run.status) for run in runs if run.id in wanted}

        return self._read(query)

    def nodes(self, run_ids: Iterable[str]) -> list[NodeAttempts] | None:
        """Every node of these runs with its attempt log."""
        ids = list(run_ids)

        async def query(db: Database) -> list[NodeAttempts]:
            found = []
            for run_id in ids:
                detail = await queries.run_detail(db, run_id, with_events=False)
                for node in detail.root.walk() if detail.root else []:
                    if node.ref is not None:
                        found.append(NodeAttempts(run_id, node.ref, str(node.status), node.attempt_log))
            return found

        return self._read(query)

    def workers_of_running_nodes(self, run_ids: Iterable[str]) -> set[str] | None:
        """The worker ids (``worker-<pid>-...``) holding an attempt of a running node right now."""
        nodes = self.nodes(run_ids)
        if nodes is None:
            return None
        return {
            str(node.attempt_log[-1].get("worker"))
            for node in nodes
            if node.status == "running" and node.attempt_log and "endTime" not in node.attempt_log[-1]
        }


def _database_away(error: BaseException) -> bool:
    """PostgreSQL down or restarting: psycopg's errors (their module tells them) or a refused socket."""
    return type(error).__module__.startswith("psycopg") or isinstance(error, OSError)


@dataclass(frozen=True)
class Fault:
    at: float  # time.time() when it struck: the clock of the attempt log
    kind: str  # "kill" (SIGKILL of a releaseflow process), "restart" (of the PostgreSQL server)
    pid: int | None = None  # the process a kill struck


def reclaim_seconds(faults: Sequence[Fault], nodes: Iterable[NodeAttempts]) -> dict[str, list[float]]:
    """By kind of fault: for each attempt lost to one, the seconds from it to the node's next attempt.

    An attempt whose worker process was killed is lost to that kill; any other lost attempt to the
    last PostgreSQL restart between its start and the next attempt's (none: lost to something else,
    not measured).
    """
    kills = {fault.pid: fault for fault in faults if fault.pid is not None}
    found: dict[str, list[float]] = {}
    for node in nodes:
        for lost, following in pairwise(node.attempt_log):
            if lost.get("status") != "lost":
                continue
            began, resumed = float(lost["startTime"]), float(following["startTime"])
            pid = pid_of_worker(str(lost.get("worker")))
            fault = kills.get(pid) if pid is not None else None
            if fault is None:
                restarts = [f for f in faults if f.pid is None and began <= f.at <= resumed]
                fault = max(restarts, key=lambda restart: restart.at) if restarts else None
            if fault is not None:
                found.setdefault(fault.kind, []).append(resumed - fault.at)
    return found


def spread(values: Sequence[float]) -> str:
    if not values:
        return "none measured"
    return (
        f"min {min(values):.2f} s, median {statistics.median(values):.2f} s, max {max(values):.2f} s"
        f" (n={len(values)})"
    )


def pid_of_worker(worker_id: str) -> int | None:
    """The process id in a worker id ``worker-<pid>-<hex>``."""
    parts = worker_id.split("-")
    return int(parts[1]) if len(parts) == 3 and parts[0] == "worker" and parts[1].isdigit() else None

"""The faults of the chaos scenario, dealt to real processes: SIGKILL, and PostgreSQL taken away.

Each function deals one fault and returns it (when it struck, on the clock of the engine's attempt
log, and what), so that what followed can be measured from it.
"""

from __future__ import annotations

import random
import subprocess
import time
from typing import Any

import httpx
from tests.acceptance.support import Releaseflow, wait_until
from tests.chaos.observer import Fault, Observer, pid_of_worker
from tests.postgres_cluster import PostgresCluster

# A worker holding a node is looked for this long before any worker is killed instead.
TARGET_SECONDS = 5.0


def health(installation: Releaseflow) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{installation.url}/healthz", timeout=10).json()
    return answer


def busy_process(
    observer: Observer, processes: list[subprocess.Popen[str]], run_ids: list[str], rng: random.Random
) -> int | None:
    """The index of one of ``processes`` whose worker holds a running node of these runs, looked for
    up to ``TARGET_SECONDS``; None if none did meanwhile."""
    pids = {process.pid: index for index, process in enumerate(processes)}
    deadline = time.monotonic() + TARGET_SECONDS
    while time.monotonic() < deadline:
        holders = observer.workers_of_running_nodes(run_ids) or set()
        busy = [pids[pid] for pid in map(pid_of_worker, holders) if pid in pids]
        if busy:
            return rng.choice(busy)
        time.sleep(0.01)
    return None


def kill_server(
    installation: Releaseflow, server: subprocess.Popen[str], observer: Observer, run_ids: list[str]
) -> tuple[Fault, subprocess.Popen[str]]:
    """SIGKILL ``server`` while it runs a node (if it does soon), start it again; returns the new one."""
    busy_process(observer, [server], run_ids, random.Random(0))  # one process: nothing to choose
    server.kill()
    struck = Fault(time.time(), "kill", server.pid)
    server.wait(timeout=10)
    return struck, installation.serve()


def kill_busy_worker(
    installation: Releaseflow,
    observer: Observer,
    workers: list[subprocess.Popen[str]],
    run_ids: list[str],
    rng: random.Random,
) -> Fault:
    """SIGKILL the worker holding a running node (any worker if none does soon), start another.

    ``workers`` is updated in place: the killed one is replaced by its successor.
    """
    index = busy_process(observer, workers, run_ids, rng)
    if index is None:
        index = rng.randrange(len(workers))
    workers[index].kill()
    struck = Fault(time.time(), "kill", workers[index].pid)
    workers[index].wait(timeout=10)
    workers[index] = installation.spawn("worker")
    return struck


def restart_postgres(
    cluster: PostgresCluster, installation: Releaseflow, processes: list[subprocess.Popen[str]]
) -> Fault:
    """Take the PostgreSQL server away until ``/healthz`` says degraded, bring it back, wait for ok.

    Every process must ride it out: one that exited fails here, with the logs.
    """
    cluster.stop_server()
    struck = Fault(time.time(), "restart")
    try:
        away = wait_until(
            lambda: (answer := health(installation))["status"] == "degraded" and answer,
            timeout=20,
            what="/healthz to report degraded while PostgreSQL is down",
        )
    finally:
        cluster.start_server()
    assert away["database"].startswith("unreachable"), away
    wait_until(
        lambda: health(installation)["status"] == "ok", timeout=30, what="/healthz ok after the outage"
    )
    exited = [process.args for process in processes if process.poll() is not None]
    assert not exited, f"exited during the outage: {exited}\n{installation.logs()}"
    return struck

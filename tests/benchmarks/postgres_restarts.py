"""``python -m tests.benchmarks.postgres_restarts [--restarts N] [--down SECONDS]``: a soak of outages.

``releaseflow serve`` and two ``releaseflow worker`` processes on a throwaway PostgreSQL cluster; the
server is stopped, kept down ``--down`` seconds and started again, ``--restarts`` times. After each
restart it measures the seconds from the server being back to ``/healthz`` answering ``ok`` and to a
run started then ending ``success``, and at the end how many of the three processes exited (0 is
the only right answer). Everything it started is stopped when it ends.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from tests.acceptance.config import write_config
from tests.acceptance.support import Releaseflow, free_port, started_run_id, wait_until
from tests.cleanup import stop_everything_under
from tests.postgres_cluster import FreshDatabases, PostgresCluster


def spread(values: list[float]) -> str:
    return f"min {min(values):.2f} median {statistics.median(values):.2f} max {max(values):.2f} s"


def soak(restarts: int, down: float) -> str:
    cluster = PostgresCluster()
    folder = Path(tempfile.mkdtemp(prefix="rf-outages-"))
    folder.chmod(0o755)  # the `postgres` user may need to enter it
    installation = Releaseflow(data_dir=folder / "data", port=free_port(), cwd=folder)
    try:
        installation.extra_env["RELEASEFLOW_DATABASE_URL"] = FreshDatabases(cluster.start()).create()
        processes = [installation.serve(), installation.spawn("worker"), installation.spawn("worker")]
        installation.cli("apply", "-f", str(write_config(folder, installation.url)), check=True)
        healthy, resumed = [], []
        for _ in range(restarts):
            cluster.stop_server()
            time.sleep(down)
            cluster.start_server()
            back = time.monotonic()
            wait_until(
                lambda: httpx.get(f"{installation.url}/healthz", timeout=10).json()["status"] == "ok",
                timeout=60,
                what="/healthz ok",
            )
            healthy.append(time.monotonic() - back)
            run_id = started_run_id(installation.cli("run", "main", "Development", check=True).stdout)
            detail = installation.wait_for_run(run_id, ("success", "failed", "aborted"), timeout=60)
            if detail["status"] != "success":
                raise AssertionError(f"run {run_id} ended {detail['status']}")
            resumed.append(time.monotonic() - back)
        exited = sum(process.poll() is not None for process in processes)
        return (
            f"restarts {restarts} (down {down:g} s each); processes exited {exited} of 3;"
            f" /healthz ok after the server is back: {spread(healthy)};"
            f" a new run succeeded after the server is back: {spread(resumed)}"
        )
    finally:
        installation.kill_all()
        stop_everything_under(folder)
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--restarts", type=int, default=8)
    parser.add_argument("--down", type=float, default=2.0, help="seconds the server stays down")
    arguments = parser.parse_args()
    print(soak(arguments.restarts, arguments.down), flush=True)


if __name__ == "__main__":
    main()

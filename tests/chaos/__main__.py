"""``python -m tests.chaos [--database sqlite|postgres] [--minutes N | --kills N]``: the chaos soak.

The scenario of ``tests/acceptance/test_chaos.py``, for longer: runs of a ten-node chain of job runs
kept in flight while, on SQLite, the one ``releaseflow serve`` is SIGKILLed mid-node and started again,
or, on PostgreSQL (a throwaway cluster), one of two ``releaseflow worker`` processes beside ``serve`` is
SIGKILLed mid-node and replaced, and the PostgreSQL server is restarted after every
``--restart-every`` kills. Default settings (a 15 s lease). It prints runs, kills, stuck runs, effects
done twice and missing (all three must be 0), and the reclaim time, and exits 1 if anything that
must not happen did. Everything it started is stopped when it ends; loopback only.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from tests.acceptance.support import Releaseflow, free_port
from tests.chaos.scenario import Budget, Outcome, postgres_chaos, sqlite_chaos
from tests.cleanup import stop_everything_under
from tests.postgres_cluster import FreshDatabases, PostgresCluster


def soak(database: str, budget: Budget) -> Outcome:
    folder = Path(tempfile.mkdtemp(prefix="rf-chaos-"))
    folder.chmod(0o755)  # the `postgres` user may need to enter it
    installation = Releaseflow(data_dir=folder / "data", port=free_port(), cwd=folder)
    cluster = PostgresCluster() if database == "postgres" else None
    try:
        if cluster is None:
            return sqlite_chaos(installation, budget)
        installation.extra_env["RELEASEFLOW_DATABASE_URL"] = FreshDatabases(cluster.start()).create()
        return postgres_chaos(installation, cluster, budget)
    finally:
        installation.kill_all()
        stop_everything_under(folder)
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--kills", type=int, help="stop after this many kills (default 100)")
    limit.add_argument("--minutes", type=float, help="stop dealing faults after this many minutes")
    parser.add_argument("--in-flight", type=int, default=3, help="runs of the chain going at once")
    parser.add_argument(
        "--restart-every", type=int, default=10, help="PostgreSQL: restart the server after every N kills"
    )
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    # The observer's own connections are cut by each PostgreSQL restart; their pool says so at length.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    minutes, kills = arguments.minutes, arguments.kills
    budget = Budget(
        kills=sys.maxsize if minutes is not None else 100 if kills is None else kills,
        seconds=minutes * 60 if minutes is not None else float("inf"),
        in_flight=arguments.in_flight,
        restart_every=arguments.restart_every,
        seed=arguments.seed,
    )
    outcome = soak(arguments.database, budget)
    print(outcome.summary(), flush=True)
    problems = outcome.problems()
    for problem in problems:
        print(problem, flush=True)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

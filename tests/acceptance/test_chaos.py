"""Chaos, bounded: real processes SIGKILLed mid-run while chains of job runs go on; every effect once.

The effects are counted from the platform's side: each node's job appends one line naming its run and
node (``tests/chaos/project.py``). ``python -m tests.chaos`` runs the same scenario for longer.
"""

from __future__ import annotations

from tests.acceptance.support import Releaseflow
from tests.chaos.project import CHAIN_LENGTH
from tests.chaos.scenario import Budget, Outcome, postgres_chaos, sqlite_chaos
from tests.conftest import FreshPostgresDatabase


def assert_every_effect_once(outcome: Outcome, installation: Releaseflow) -> None:
    problems = outcome.problems()
    assert not problems, "\n".join(
        [outcome.summary(), *problems, "--- logs ---", installation.logs()[-20_000:]]
    )
    assert outcome.effects.done == CHAIN_LENGTH * len(outcome.runs)
    # Sanity only (a fault's attempt is taken over by a live process): never negative, never absurd.
    assert all(0 <= seconds < 60 for each in outcome.reclaims.values() for seconds in each), outcome.reclaims


def test_chaos__sqlite_server_killed_mid_run_and_restarted(releaseflow: Releaseflow) -> None:
    outcome = sqlite_chaos(releaseflow, Budget(kills=4, pause=(0.3, 1.2), settle_seconds=45))

    print(outcome.summary())
    assert outcome.kills == 4 and len(outcome.runs) >= 3
    assert_every_effect_once(outcome, releaseflow)
    assert outcome.integrity == "ok"


def test_chaos__postgres_workers_killed_mid_node_and_replaced(
    releaseflow: Releaseflow, fresh_postgres_database: FreshPostgresDatabase
) -> None:
    releaseflow.extra_env.update(
        RELEASEFLOW_DATABASE_URL=fresh_postgres_database(),
        # A killed worker is seen dead by its liveness lock; a short lease bounds what the lock misses.
        RELEASEFLOW_WORKER_LEASE_SECONDS="4",
        RELEASEFLOW_WORKER_HEARTBEAT_SECONDS="1",
    )
    outcome = postgres_chaos(releaseflow, None, Budget(kills=4, pause=(0.2, 1.0), settle_seconds=45))

    print(outcome.summary())
    assert outcome.kills == 4 and len(outcome.runs) >= 3
    assert_every_effect_once(outcome, releaseflow)

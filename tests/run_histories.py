"""Random histories of a stage's runs, for checking that two ways of reading them agree: runs that
overlap, fail, are aborted or still running, rollbacks to any earlier run, conclusions that tie."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from releaseflow.domain.delivery_metrics import RunFact

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def random_history(chance: random.Random, size: int) -> list[RunFact]:
    """``size`` runs in creation order, about one an hour, through calm spells and spells where most
    releases fail (incidents of many runs, some open across any moment)."""
    runs: list[RunFact] = []
    failing = False
    for index in range(size):
        failing = failing != (chance.random() < 0.08)
        created = T0 + timedelta(hours=index, minutes=chance.randrange(60))
        weights = [15, 75, 6, 4] if failing else [75, 13, 8, 4]
        status = chance.choices(["success", "failed", "aborted", "running"], weights)[0]
        lasted = timedelta(minutes=chance.choice([0, 30, 60, 90, 180, 300]))  # 0: ties, long: overlaps
        rollback = runs and chance.random() < 0.06
        # Mostly back to the last successful run, as people do; now and then further back.
        good = [run for run in runs if run.status == "success"]
        target = good[-1] if good and chance.random() < 0.8 else chance.choice(runs) if runs else None
        runs.append(
            RunFact(
                id=f"run-{index:04d}",
                kind="rollback" if rollback else "release",
                status=status,
                created_at=created,
                concluded_at=None if status == "running" else created + lasted,
                rollback_of=target.id if rollback and target else None,
            )
        )
    return runs

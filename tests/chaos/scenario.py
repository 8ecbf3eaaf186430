"""The chaos scenario: runs of the chain kept in flight while processes are killed, then the tally.

Shared by the bounded test (``tests/acceptance/test_chaos.py``) and the soak (``python -m tests.chaos``),
which differ only in how many faults they deal. What is counted:

- **runs** started, and how they ended; **stuck**: runs not ended ``settle_seconds`` after the last
  fault (must be 0);
- **effects** from the platform's side (the job's lines, see ``project``): done twice, missing (0 each);
- **reclaim**: for each attempt lost to a fault, the seconds from the fault to the node's next attempt
  starting (reported, never asserted beyond sanity);
- what the local driver still records as running (0: every job run it started was followed to its
  end), and for SQLite ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.acceptance.support import Releaseflow
from tests.chaos.faults import kill_busy_worker, kill_server, restart_postgres
from tests.chaos.observer import TERMINAL, Fault, NodeAttempts, Observer, reclaim_seconds, spread
from tests.chaos.project import CHAIN_LENGTH, ChaosProject, Effects
from tests.postgres_cluster import PostgresCluster

SETTLE_SECONDS = 120.0


@dataclass(frozen=True)
class Budget:
    """How many faults to deal: ``kills`` of them, or as many as fit in ``seconds`` (whichever first)."""

    kills: int
    seconds: float = float("inf")
    in_flight: int = 3  # runs of the chain kept going at once
    pause: tuple[float, float] = (0.3, 2.0)  # seconds between faults, drawn uniformly
    restart_every: int = 0  # PostgreSQL: restart the server after every N worker kills (0: never)
    settle_seconds: float = SETTLE_SECONDS
    seed: int = 7


@dataclass
class Outcome:
    database: str
    runs: dict[str, str]  # run id -> final status (or the status it was stuck in)
    kills: int
    restarts: int
    effects: Effects
    reclaims: dict[str, list[float]]  # kind of fault -> seconds to the next attempt, per lost attempt
    seconds: float
    nodes: list[NodeAttempts] = field(default_factory=list)
    jobs_left_running: list[str] = field(default_factory=list)
    integrity: str = "not checked"
    project_tags: dict[str, str] = field(default_factory=dict)  # run id -> its tag in the effects

    @property
    def stuck(self) -> list[str]:
        return [run_id for run_id, status in self.runs.items() if status not in TERMINAL]

    def summary(self) -> str:
        ended = Counter(status for status in self.runs.values())
        restarts = f", PostgreSQL restarts {self.restarts}" if self.restarts else ""
        return "\n".join(
            [
                f"database {self.database}: {self.seconds:.0f} s, kills {self.kills}{restarts}",
                f"runs {len(self.runs)} ({', '.join(f'{n} {s}' for s, n in sorted(ended.items()))}),"
                f" stuck {len(self.stuck)}",
                f"effects {self.effects.done} of {len(self.runs) * CHAIN_LENGTH}:"
                f" done twice {len(self.effects.twice)}, missing {len(self.effects.missing)},"
                f" unexpected {len(self.effects.unexpected)}",
                *(
                    [f"reclaim after a {kind}: {spread(seconds)}" for kind, seconds in self.reclaims.items()]
                    or ["reclaim: no attempt was lost to a fault"]
                ),
                f"driver job records left running {len(self.jobs_left_running)};"
                f" database integrity: {self.integrity}",
            ]
        )

    def problems(self) -> list[str]:
        """Everything that must not happen, each with what the engine recorded about it."""
        tags = {tag: run_id for run_id, tag in self.project_tags.items()}
        by_line = {f"{self.project_tags[node.run_id]} {node.ref}": node for node in self.nodes}
        found = [f"run {run_id} is stuck {self.runs[run_id]}" for run_id in self.stuck]
        found += [
            f"run {run_id} ended {status}"
            for run_id, status in self.runs.items()
            if status in TERMINAL and status != "success"
        ]
        for line, count in self.effects.twice.items():
            found.append(f"'{line}' done {count} times; attempts: {_attempts(by_line.get(line))}")
        for line in self.effects.missing:
            found.append(
                f"'{line}' missing (run {tags[line.split()[0]]}); attempts: {_attempts(by_line.get(line))}"
            )
        found += [f"unexpected line '{line}'" for line in self.effects.unexpected]
        found += [f"driver job record left running: {record}" for record in self.jobs_left_running]
        if self.integrity not in ("ok", "not checked"):
            found.append(f"database integrity: {self.integrity}")
        return found


def _attempts(node: NodeAttempts | None) -> str:
    return json.dumps(list(node.attempt_log)) if node else "(node not found)"


class Chaos:
    """One installation with the chaos project, its runs, and the faults dealt so far."""

    def __init__(self, installation: Releaseflow, budget: Budget, database: str) -> None:
        self.installation = installation
        self.budget = budget
        self.database = database
        self.rng = random.Random(budget.seed)
        self.project = ChaosProject(installation)
        self.observer = Observer(installation)
        self.faults: list[Fault] = []
        self.kills = 0
        self.restarts = 0
        self.active: list[str] = []  # runs not ended when last looked at
        self.began = time.monotonic()

    def __enter__(self) -> Chaos:
        return self

    def __exit__(self, *exc: object) -> None:
        self.observer.close()

    def more(self) -> bool:
        return self.kills < self.budget.kills and time.monotonic() - self.began < self.budget.seconds

    def pause(self) -> None:
        time.sleep(self.rng.uniform(*self.budget.pause))

    def top_up(self) -> None:
        """Start runs until ``in_flight`` are going (none while the database is away)."""
        statuses = self.observer.statuses(self.project.runs)
        if statuses is None:
            return
        self.active = [run_id for run_id in self.project.runs if statuses.get(run_id) not in TERMINAL]
        while len(self.active) < self.budget.in_flight:
            self.active.append(self.project.start_run())

    def settle(self) -> Outcome:
        """Wait for every run to end (up to ``settle_seconds``), then count."""
        deadline = time.monotonic() + self.budget.settle_seconds
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            statuses = self.observer.statuses(self.project.runs) or statuses
            if len(statuses) == len(self.project.runs) and set(statuses.values()) <= TERMINAL:
                break
            time.sleep(0.2)
        nodes = self.observer.nodes(self.project.runs) or []
        return Outcome(
            database=self.database,
            runs={run_id: statuses.get(run_id, "unknown") for run_id in self.project.runs},
            kills=self.kills,
            restarts=self.restarts,
            effects=self.project.effects(),
            reclaims=reclaim_seconds(self.faults, nodes),
            seconds=time.monotonic() - self.began,
            nodes=nodes,
            jobs_left_running=self._jobs_left_running(),
            project_tags=dict(self.project.runs),
        )

    def _jobs_left_running(self) -> list[str]:
        """Job runs the local driver still records as running (read from its own records)."""
        left = []
        for record in sorted((self.installation.data_dir / "local" / "jobs").glob("run-*/run.json")):
            data = json.loads(record.read_text(encoding="utf-8"))
            if data.get("status") == "running":
                left.append(f"{data['id']} (key {data['key']}, pid {bool(data.get('process'))})")
        return left


def sqlite_chaos(installation: Releaseflow, budget: Budget) -> Outcome:
    """One ``releaseflow serve`` on SQLite, SIGKILLed mid-run and started again, ``budget`` times."""
    with Chaos(installation, budget, "sqlite") as chaos:
        server = installation.serve()
        chaos.project.set_up()
        chaos.top_up()
        while chaos.more():
            chaos.pause()
            struck, server = kill_server(installation, server, chaos.observer, chaos.active)
            chaos.faults.append(struck)
            chaos.kills += 1
            if chaos.more():
                chaos.top_up()
        outcome = chaos.settle()
    Releaseflow.stop(server)
    outcome.integrity = _sqlite_integrity(installation)
    return outcome


def postgres_chaos(installation: Releaseflow, cluster: PostgresCluster | None, budget: Budget) -> Outcome:
    """``serve`` and two ``worker`` processes on PostgreSQL; workers SIGKILLed mid-node and replaced,
    and (``budget.restart_every``, needs ``cluster``) the PostgreSQL server restarted now and then."""
    with Chaos(installation, budget, "postgresql") as chaos:
        server = installation.serve()
        workers = [installation.spawn("worker"), installation.spawn("worker")]
        chaos.project.set_up()
        chaos.top_up()
        while chaos.more():
            chaos.pause()
            chaos.faults.append(
                kill_busy_worker(installation, chaos.observer, workers, chaos.active, chaos.rng)
            )
            chaos.kills += 1
            if cluster is not None and budget.restart_every and chaos.kills % budget.restart_every == 0:
                chaos.faults.append(restart_postgres(cluster, installation, [server, *workers]))
                chaos.restarts += 1
            if chaos.more():
                chaos.top_up()
        outcome = chaos.settle()
    for process in [server, *workers]:
        Releaseflow.stop(process)
    return outcome


def _sqlite_integrity(installation: Releaseflow) -> str:
    with sqlite3.connect(installation.data_dir / "releaseflow.db") as connection:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    return "; ".join(str(row[0]) for row in rows)

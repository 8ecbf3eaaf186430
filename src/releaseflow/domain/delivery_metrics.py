"""Delivery figures of one stage, computed from its history of runs and deploys (pure).

The four figures DORA made common, with the meaning this module gives them:

- **deployment frequency**: successful release runs that deployed something, per day of the window;
- **change failure rate**: of the release runs that concluded (succeeded or failed; aborted ones are
  left out, they were stopped, not failed), those that failed or were later rolled back;
- **mean time to restore**: from a bad release concluding (failed, or later rolled back) to the next
  good run of the stage concluding (a successful release that was not rolled back, or a successful
  rollback); consecutive bad releases are one incident. An incident not restored yet is counted
  apart, not averaged;
- **lead time**: from a commit to the moment a release run deployed it on the stage, for deploys whose
  artifact records its commit time (``committedAt``); rollbacks are left out (they bring an old
  commit back, which says nothing of how long changes take). Unknown when no deploy records one.

A rollback run targets the run it returns to (``rollback_of``): the releases it rolled back are the
release runs of the stage that concluded after that run and before the rollback was created.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import mean, median
from typing import Any

_GOOD = "success"
_FAILED = "failed"
_CONCLUDED = frozenset({"success", "failed"})


@dataclass(frozen=True)
class RunFact:
    """What the figures need of one run of the stage."""

    id: str
    kind: str  # release or rollback
    status: str
    created_at: datetime
    concluded_at: datetime | None
    rollback_of: str | None = None


@dataclass(frozen=True)
class DeployFact:
    """One successful deploy of the stage (a row of its release history)."""

    run_id: str
    resource_id: str
    artifact: Mapping[str, Any]
    deployed_at: datetime


@dataclass(frozen=True)
class Incident:
    """Bad releases in a row and the run that restored the stage (None: not restored yet)."""

    bad_runs: tuple[str, ...]
    started_at: datetime
    restored_by: str | None
    restored_at: datetime | None

    @property
    def duration(self) -> timedelta | None:
        return None if self.restored_at is None else self.restored_at - self.started_at


@dataclass(frozen=True)
class DeliveryMetrics:
    window_start: datetime
    window_end: datetime
    releases: int  # release runs that concluded (succeeded or failed) in the window
    deployments: int  # successful release runs that deployed something
    failed: tuple[str, ...]
    rolled_back: tuple[str, ...]
    incidents: tuple[Incident, ...]
    lead_times: tuple[timedelta, ...]  # one per deploy whose commit time is known
    deploys_without_commit_time: int

    @property
    def days(self) -> float:
        return max((self.window_end - self.window_start).total_seconds() / 86400, 1 / 86400)

    @property
    def deployments_per_day(self) -> float:
        return self.deployments / self.days

    @property
    def change_failure_rate(self) -> float | None:
        """Failed or rolled-back releases over concluded releases; None with no release."""
        if not self.releases:
            return None
        return len(set(self.failed) | set(self.rolled_back)) / self.releases

    @property
    def mean_time_to_restore(self) -> timedelta | None:
        durations = [incident.duration for incident in self.incidents if incident.duration is not None]
        return _mean(durations)

    @property
    def open_incidents(self) -> int:
        return sum(1 for incident in self.incidents if incident.restored_at is None)

    @property
    def lead_time_mean(self) -> timedelta | None:
        return _mean(list(self.lead_times))

    @property
    def lead_time_median(self) -> timedelta | None:
        if not self.lead_times:
            return None
        return timedelta(seconds=median(lead.total_seconds() for lead in self.lead_times))


def rolled_back_runs(runs: Sequence[RunFact]) -> dict[str, str]:
    """Release runs that a later rollback undid, mapped to that rollback's id.

    A rollback to R undoes the releases that concluded after R and before the rollback was created.
    Each rollback finds its range by bisection in the releases ordered by conclusion, so a long
    history costs O((releases + rollbacks) log releases), not releases times rollbacks.
    """
    by_id = {run.id: run for run in runs}
    ended = sorted(
        (
            (run.concluded_at, run.id)
            for run in runs
            if run.kind == "release" and run.status == _GOOD and run.concluded_at is not None
        ),
    )
    ends = [end for end, _ in ended]
    undone: dict[str, str] = {}
    for rollback in sorted(runs, key=lambda run: run.created_at):
        if rollback.kind != "rollback" or rollback.rollback_of is None or rollback.status == "aborted":
            continue
        target = by_id.get(rollback.rollback_of)
        if target is None or target.concluded_at is None:
            continue
        first = bisect_right(ends, target.concluded_at)
        last = bisect_left(ends, rollback.created_at)
        for _, run_id in ended[first:last]:
            undone.setdefault(run_id, rollback.id)
    return undone


def delivery_metrics(
    runs: Sequence[RunFact],
    deploys: Sequence[DeployFact],
    *,
    now: datetime,
    since: datetime | None = None,
) -> DeliveryMetrics:
    """The figures of a stage over [since, now] (since: its first run by default).

    ``runs`` should hold the whole history, not only the window: whether a release was rolled back is
    known only from the runs after it, and an incident may have begun before the window. Runs before
    the last one that concluded before ``since`` and said how the stage was (a successful run, or a
    failed release) change nothing, though (``engine/metrics_window.py`` reads from there).
    """
    concluded = sorted(
        (run for run in runs if run.concluded_at is not None and run.status in _CONCLUDED),
        key=lambda run: run.concluded_at or now,
    )
    start = since or min((run.created_at for run in runs), default=now)

    def in_window(moment: datetime | None) -> bool:
        return moment is not None and start <= moment <= now

    undone = rolled_back_runs(runs)
    releases = [run for run in concluded if run.kind == "release" and in_window(run.concluded_at)]
    deployed_runs = {deploy.run_id for deploy in deploys}
    release_ids = {run.id for run in releases}
    lead_times: list[timedelta] = []
    unknown = 0
    for deploy in deploys:
        if deploy.run_id not in release_ids or not in_window(deploy.deployed_at):
            continue
        committed = _commit_time(deploy.artifact)
        if committed is None:
            unknown += 1
        else:
            lead_times.append(deploy.deployed_at - committed)
    return DeliveryMetrics(
        window_start=start,
        window_end=now,
        releases=len(releases),
        deployments=sum(1 for run in releases if run.status == _GOOD and run.id in deployed_runs),
        failed=tuple(run.id for run in releases if run.status == _FAILED),
        rolled_back=tuple(run.id for run in releases if run.id in undone),
        incidents=tuple(
            incident for incident in _incidents(concluded, undone) if in_window(incident.started_at)
        ),
        lead_times=tuple(lead_times),
        deploys_without_commit_time=unknown,
    )


def _incidents(concluded: Sequence[RunFact], undone: Mapping[str, str]) -> list[Incident]:
    """Walk the concluded runs in order: a bad release opens an incident, the next good run ends it."""
    incidents: list[Incident] = []
    bad: list[RunFact] = []
    for run in concluded:
        is_bad = run.kind == "release" and (run.status == _FAILED or run.id in undone)
        is_good = run.status == _GOOD and not is_bad
        if is_bad:
            bad.append(run)
        elif is_good and bad:
            incidents.append(_incident(bad, run))
            bad = []
    if bad:
        incidents.append(_incident(bad, None))
    return incidents


def _incident(bad: Sequence[RunFact], restored_by: RunFact | None) -> Incident:
    started = bad[0].concluded_at
    assert started is not None
    return Incident(
        bad_runs=tuple(run.id for run in bad),
        started_at=started,
        restored_by=restored_by.id if restored_by else None,
        restored_at=restored_by.concluded_at if restored_by else None,
    )


def _commit_time(artifact: Mapping[str, Any]) -> datetime | None:
    value = artifact.get("committedAt")
    if not isinstance(value, str) or not artifact.get("commit"):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None  # a driver's malformed time is no lead time, not a crash
    return moment if moment.tzinfo is not None else None


def _mean(durations: list[timedelta]) -> timedelta | None:
    if not durations:
        return None
    return timedelta(seconds=mean(duration.total_seconds() for duration in durations))

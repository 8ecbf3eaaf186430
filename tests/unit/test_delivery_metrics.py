"""Delivery figures from hand-built histories of a stage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from releaseflow.domain.delivery_metrics import DeployFact, RunFact, delivery_metrics, rolled_back_runs

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def run(
    run_id: str, start: float, end: float | None, status: str = "success", kind: str = "release", **extra: str
) -> RunFact:
    return RunFact(run_id, kind, status, at(start), at(end) if end is not None else None, **extra)


def deploy(run_id: str, minute: float, **artifact: str) -> DeployFact:
    return DeployFact(run_id, "web", {"kind": "build", **artifact}, at(minute))


def test_rolled_back_runs__are_the_releases_between_the_target_and_the_rollback() -> None:
    runs = [
        run("r1", 0, 1),
        run("r2", 10, 11),
        run("r3", 20, 21),
        run("rb", 30, 31, kind="rollback", rollback_of="r1"),
        run("r4", 40, 41),
    ]
    assert rolled_back_runs(runs) == {"r2": "rb", "r3": "rb"}


def test_rolled_back_runs__ignore_failed_releases_and_aborted_rollbacks() -> None:
    runs = [
        run("r1", 0, 1),
        run("bad", 10, 11, status="failed"),
        run("r2", 12, 13),
        run("stopped", 20, 21, status="aborted", kind="rollback", rollback_of="r1"),
    ]
    assert rolled_back_runs(runs) == {}
    assert rolled_back_runs([*runs, run("rb", 30, 31, kind="rollback", rollback_of="r1")]) == {"r2": "rb"}


def test_delivery_metrics__count_failures_rollbacks_and_time_to_restore() -> None:
    runs = [
        run("r1", 0, 10),
        run("f1", 60, 70, status="failed"),  # incident 1 opens at 70
        run("f2", 80, 90, status="failed"),  # same incident
        run("r2", 100, 110),  # restores incident 1 at 110 (40 minutes)
        run("r3", 200, 210),  # rolled back below: incident 2 opens at 210
        run("rb", 220, 230, kind="rollback", rollback_of="r2"),  # restores at 230 (20 minutes)
        run("gone", 240, None, status="aborted"),
    ]
    deploys = [deploy("r1", 5), deploy("r2", 105), deploy("r3", 205), deploy("rb", 225)]

    figures = delivery_metrics(runs, deploys, now=at(24 * 60))

    assert figures.releases == 5  # r1 f1 f2 r2 r3; the rollback and the aborted run are no releases
    assert figures.deployments == 3
    assert figures.failed == ("f1", "f2") and figures.rolled_back == ("r3",)
    assert figures.change_failure_rate == pytest.approx(3 / 5)
    assert [(i.bad_runs, i.restored_by) for i in figures.incidents] == [(("f1", "f2"), "r2"), (("r3",), "rb")]
    assert figures.mean_time_to_restore == timedelta(minutes=30)
    assert figures.days == pytest.approx(1.0)
    assert figures.deployments_per_day == pytest.approx(3.0)
    assert figures.open_incidents == 0


def test_delivery_metrics__an_incident_not_restored_is_counted_apart() -> None:
    runs = [run("r1", 0, 10), run("f1", 20, 30, status="failed")]

    figures = delivery_metrics(runs, [deploy("r1", 5)], now=at(60))

    assert figures.open_incidents == 1
    assert figures.mean_time_to_restore is None
    assert figures.change_failure_rate == pytest.approx(0.5)


def test_delivery_metrics__lead_time_where_the_commit_time_is_known() -> None:
    runs = [run("r1", 0, 10), run("r2", 100, 110), run("rb", 120, 130, kind="rollback", rollback_of="r1")]
    deploys = [
        deploy("r1", 5, commit="aaa", committedAt=at(-55).isoformat()),  # 60 minutes
        deploy("r2", 105, commit="bbb", committedAt=at(75).isoformat()),  # 30 minutes
        deploy("rb", 125, commit="aaa", committedAt=at(-55).isoformat()),  # a rollback: no lead time
        deploy("r2", 106, commit="ccc"),  # commit without its time
    ]

    figures = delivery_metrics(runs, deploys, now=at(200))

    assert sorted(figures.lead_times) == [timedelta(minutes=30), timedelta(minutes=60)]
    assert figures.lead_time_median == timedelta(minutes=45)
    assert figures.deploys_without_commit_time == 1


def test_delivery_metrics__unknown_without_commit_times_or_releases() -> None:
    empty = delivery_metrics([], [], now=T0)
    assert empty.change_failure_rate is None and empty.lead_time_mean is None
    assert empty.deployments_per_day == 0

    figures = delivery_metrics([run("r1", 0, 10)], [deploy("r1", 5, commit="aaa")], now=at(60))
    assert figures.lead_time_median is None and figures.deploys_without_commit_time == 1


def test_delivery_metrics__the_window_counts_only_what_concluded_in_it() -> None:
    runs = [run("old", 0, 10), run("bad", 20, 30, status="failed"), run("new", 2000, 2010)]
    deploys = [deploy("old", 5), deploy("new", 2005)]

    figures = delivery_metrics(runs, deploys, now=at(3000), since=at(1000))

    assert (figures.releases, figures.deployments, figures.failed) == (1, 1, ())
    assert figures.incidents == ()  # it began before the window
    assert figures.window_start == at(1000)

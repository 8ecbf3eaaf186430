"""The release benchmark's figures: a Markdown table for people, a JSON document for machines."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from tests.benchmarks.release_bench import (
    CLIENT_INTERVAL_SECONDS,
    FIGURES,
    WATCH_INTERVAL_SECONDS,
    DriverResult,
    Skipped,
)

# (heading, figure, statistic) of the table's columns after the driver and the number of runs.
COLUMNS = (
    ("release p50 ms", "release", "median"),
    ("p95", "release", "p95"),
    ("platform p50 ms", "platform", "median"),
    ("p95", "platform", "p95"),
    ("overhead p50 ms", "overhead", "median"),
    ("p95", "overhead", "p95"),
    ("health wait p50 ms", "health_wait", "median"),
    ("node done p50 ms", "node_done", "median"),
)


def _value(result: DriverResult, figure: str, statistic: str) -> float:
    return result.median(figure) if statistic == "median" else result.p95(figure)


def _markdown(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in [headings, *rows]) for column in range(len(headings))]

    def line(cells: Sequence[str]) -> str:
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    return [line(headings), "|" + "|".join("-" * (width + 2) for width in widths) + "|"] + [
        line(row) for row in rows
    ]


def availability(result: DriverResult) -> dict[str, Any]:
    """Requests the client saw fail during good and failed deploys, and what the failed deploys cost."""
    failed = result.failed_deploys
    return {
        "good_failed_requests": sum(sample.failed_requests for sample in result.samples),
        "good_requests": sum(sample.requests for sample in result.samples),
        "failed_deploy_failed_requests": sum(deploy.failed_requests for deploy in failed),
        "failed_deploy_requests": sum(deploy.requests for deploy in failed),
        "failed_deploy_attempts_max": max((deploy.attempts for deploy in failed), default=0),
        "failed_deploy_seconds_median": statistics.median(d.seconds for d in failed) if failed else None,
    }


def availability_table(results: Sequence[DriverResult | Skipped]) -> list[str]:
    measured = [result for result in results if isinstance(result, DriverResult)]
    headings = [
        "driver",
        "failed requests, good deploys",
        "failed requests, failed deploys",
        "attempts per failed deploy",
        "failed deploy p50 ms",
    ]
    rows = []
    for result in measured:
        figures = availability(result)
        seconds = figures["failed_deploy_seconds_median"]
        rows.append(
            [
                result.driver,
                f"{figures['good_failed_requests']} of {figures['good_requests']}",
                f"{figures['failed_deploy_failed_requests']} of {figures['failed_deploy_requests']}",
                str(figures["failed_deploy_attempts_max"]),
                "-" if seconds is None else f"{seconds * 1000:.0f}",
            ]
        )
    if not rows:
        return []
    return [
        *_markdown(headings, rows),
        f"(a client asks the public port every {CLIENT_INTERVAL_SECONDS * 1000:g} ms, a new connection"
        " each time, during each measured deploy and each deploy of a version that exits at start;"
        " target: 0 failed requests, 1 attempt)",
    ]


def table(results: Sequence[DriverResult | Skipped], repeat: int) -> str:
    headings = ["driver", "runs", *(heading for heading, _, _ in COLUMNS)]
    measured = [result for result in results if isinstance(result, DriverResult)]
    rows = [
        [result.driver, str(len(result.samples))]
        + [f"{_value(result, figure, statistic) * 1000:.0f}" for _, figure, statistic in COLUMNS]
        for result in measured
    ]
    lines = []
    if rows:
        lines = _markdown(headings, rows)
        lines.append(
            f"(median and nearest-rank p95 of {repeat} deploys after one warm-up deploy per driver;"
            f" the service is asked for its version every {WATCH_INTERVAL_SECONDS * 1000:g} ms)"
        )
        for result in measured:
            phases = "; ".join(
                f"{name} {seconds * 1000:.0f}" for name, seconds in result.phase_medians().items()
            )
            lines.append(f"({result.driver}, release p50 by phase, ms: {phases})")
            lines += [f"({result.driver}: {note})" for note in result.notes]
        lines += ["", *availability_table(results)]
    for skipped in results:
        if isinstance(skipped, Skipped):
            lines.append(f"{skipped.driver}: release figures skipped: {skipped.reason}")
    return "\n".join(lines)


def as_json(results: Sequence[DriverResult | Skipped], repeat: int) -> dict[str, Any]:
    """The ``release`` part of the benchmark's JSON document (seconds throughout)."""
    return {
        "repeat": repeat,
        "watch_interval_seconds": WATCH_INTERVAL_SECONDS,
        "drivers": [
            {
                "driver": result.driver,
                "median": {figure: result.median(figure) for figure in FIGURES},
                "p95": {figure: result.p95(figure) for figure in FIGURES},
                "phases_median": result.phase_medians(),
                "notes": list(result.notes),
                "availability": availability(result),
                "failed_deploys": [
                    {
                        "failed_requests": deploy.failed_requests,
                        "requests": deploy.requests,
                        "attempts": deploy.attempts,
                        "seconds": deploy.seconds,
                    }
                    for deploy in result.failed_deploys
                ],
                "runs": [
                    {
                        "version": sample.version,
                        **sample.figures(),
                        "phases": dict(sample.phases),
                        "failed_requests": sample.failed_requests,
                        "requests": sample.requests,
                    }
                    for sample in result.samples
                ],
            }
            for result in results
            if isinstance(result, DriverResult)
        ],
        "skipped": [
            {"driver": result.driver, "reason": result.reason}
            for result in results
            if isinstance(result, Skipped)
        ],
    }

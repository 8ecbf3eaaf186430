"""The benchmark's figures as a table for people and as JSON for machines, with the targets beside them."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.benchmarks.engine_bench import ScenarioResult

from releaseflow.engine.worker import WorkerSettings


@dataclass(frozen=True)
class Target:
    """A figure the engine should reach (from the performance issue), on the databases it applies to."""

    figure: str
    label: str
    limit: float
    at_most: bool  # True: the figure must not exceed the limit; False: it must reach it
    databases: frozenset[str]

    def met(self, value: float) -> bool:
        return value <= self.limit if self.at_most else value >= self.limit


TARGETS = (
    Target("dispatch_p95_ms", "dispatch p95 <= 25 ms", 25.0, True, frozenset({"sqlite", "postgresql"})),
    # The issue sets the throughput target for the embedded default; PostgreSQL is reported beside it.
    Target("transitions_per_second", ">= 300 transitions/s on SQLite", 300.0, False, frozenset({"sqlite"})),
)

# (heading, figure, format) of the table's columns, after database, scenario and nodes.
COLUMNS = (
    ("wall s", "wall_seconds", "{:.2f}"),
    ("ms/node", "overhead_per_node_ms", "{:.1f}"),
    ("dispatch p50 ms", "dispatch_p50_ms", "{:.1f}"),
    ("p95 ms", "dispatch_p95_ms", "{:.1f}"),
    ("max ms", "dispatch_max_ms", "{:.1f}"),
    ("transitions/s", "transitions_per_second", "{:.0f}"),
    ("tx/node", "transactions_per_node", "{:.1f}"),
    ("stmts/node", "statements_per_node", "{:.1f}"),
)


def verdicts(result: ScenarioResult) -> list[tuple[Target, float, bool]]:
    medians = result.medians()
    return [
        (target, medians[target.figure], target.met(medians[target.figure]))
        for target in TARGETS
        if result.database in target.databases
    ]


def table(results: Sequence[ScenarioResult], repeat: int) -> str:
    """A Markdown table (readable in a terminal and pasteable into the README) of the medians."""
    headings = ["database", "scenario", "nodes", *(heading for heading, _, _ in COLUMNS), "targets"]
    rows = []
    for result in results:
        medians = result.medians()
        cells = [result.database, result.shape, str(result.nodes)]
        cells += [form.format(medians[figure]) for _, figure, form in COLUMNS]
        cells.append(
            "; ".join(f"{target.label}: {'met' if met else 'MISSED'}" for target, _, met in verdicts(result))
        )
        rows.append(cells)
    widths = [max(len(row[column]) for row in [headings, *rows]) for column in range(len(headings))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    lines = [line(headings), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    lines += [line(row) for row in rows]
    lines.append(f"(median of {repeat} measured runs after one warm-up run per scenario)")
    if any(result.shape == "parallel" for result in results):
        # Without this the parallel dispatch figures read like a slow wake-up; they are mostly queueing.
        slots = WorkerSettings().max_concurrency
        lines.append(
            f"(parallel: every leaf becomes due at once and the worker runs at most {slots} at a time,"
            " so a leaf's dispatch latency includes waiting for a free slot)"
        )
    return "\n".join(lines)


def as_json(results: Sequence[ScenarioResult], options: dict[str, Any]) -> dict[str, Any]:
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "options": options,
        "targets": [
            {
                "figure": t.figure,
                "label": t.label,
                "limit": t.limit,
                "at_most": t.at_most,
                "databases": sorted(t.databases),
            }
            for t in TARGETS
        ],
        "results": [
            {
                "database": result.database,
                "scenario": result.shape,
                "nodes": result.nodes,
                "median": result.medians(),
                "targets": [
                    {"label": target.label, "value": value, "met": met}
                    for target, value, met in verdicts(result)
                ],
                "runs": [run.summary() for run in result.runs],
            }
            for result in results
        ],
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

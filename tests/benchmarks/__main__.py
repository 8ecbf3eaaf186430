"""``python -m tests.benchmarks`` (``make bench``): the engine benchmark, then the release benchmark.

engine: SQLite runs in a temporary file; PostgreSQL in a throwaway cluster of its own (or the server
named by RELEASEFLOW_TEST_POSTGRES_URL). release: real deploys on the local driver and, when podman is
installed, the docker driver (podman and a registry of its own). Everything either started is removed
when the benchmark ends, however it ends. cli: how long ``releaseflow --help`` and the read commands
take against bare ``python -c pass``. rollback: from a rollback request to its first deploy, and the
runs list of a stage with 100,000 runs. ``--suite engine`` (or release, cli, rollback) runs one alone.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.benchmarks import cli_bench, release_report, rollback_bench
from tests.benchmarks.engine_bench import SHAPES, ScenarioResult, Shape, bench_database
from tests.benchmarks.release_bench import DriverResult, Skipped
from tests.benchmarks.release_docker import bench_docker
from tests.benchmarks.release_local import bench_local
from tests.benchmarks.report import as_json, table, write_json
from tests.postgres_cluster import FreshDatabases, PostgresCluster

DATABASES = ("sqlite", "postgresql")
SUITES = ("engine", "release", "cli", "rollback")
DRIVERS = ("local", "docker")


def _names(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated list of names from ``allowed``."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = sorted(set(names) - set(allowed))
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)} (comma-separated)")
        return names

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks",
        description="engine: release flows through the engine with a no-op driver, what the engine costs."
        " release: real deploys on the local and docker drivers, against what the platform itself needs.",
    )
    parser.add_argument(
        "--suite",
        type=_names(SUITES),
        default=list(SUITES),
        help="engine,release,cli,rollback (default all four)",
    )
    parser.add_argument("--cli-repeat", type=int, default=10, help="cli: runs of each command (default 10)")
    parser.add_argument("--nodes", type=int, default=200, help="leaf nodes per run (default 200)")
    parser.add_argument(
        "--databases",
        type=_names(DATABASES),
        default=list(DATABASES),
        help="sqlite,postgresql (default both)",
    )
    parser.add_argument(
        "--scenarios", type=_names(SHAPES), default=list(SHAPES), help="sequential,parallel (default both)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="measured runs per scenario; the median is reported"
    )
    parser.add_argument(
        "--drivers", type=_names(DRIVERS), default=list(DRIVERS), help="release: local,docker (default both)"
    )
    parser.add_argument(
        "--release-repeat",
        type=int,
        default=5,
        help="release: measured deploys per driver after one warm-up (default 5)",
    )
    parser.add_argument(
        "--history-runs",
        type=int,
        default=100_000,
        help="rollback: runs in the listed stage (default 100000)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this path")
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.repeat < 1 or args.release_repeat < 1:
        parser.error("--nodes, --repeat and --release-repeat must be at least 1")
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def bench_sqlite(shapes: list[Shape], nodes: int, repeat: int) -> list[ScenarioResult]:
    with tempfile.TemporaryDirectory(prefix="releaseflow-bench-") as directory:
        url = f"sqlite://{Path(directory) / 'bench.db'}"
        return await bench_database("sqlite", url, shapes, nodes, repeat, progress)


async def bench_postgresql(shapes: list[Shape], nodes: int, repeat: int) -> list[ScenarioResult]:
    progress("starting a throwaway PostgreSQL cluster")
    with PostgresCluster() as admin_url:
        databases = FreshDatabases(admin_url)
        try:
            return await bench_database("postgresql", databases.create(), shapes, nodes, repeat, progress)
        finally:
            databases.drop_all()


async def main(args: argparse.Namespace) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    for database in args.databases:
        progress(
            f"{database}: {', '.join(args.scenarios)} with {args.nodes} nodes, 1 warm-up + {args.repeat} runs"
        )
        bench = bench_sqlite if database == "sqlite" else bench_postgresql
        results += await bench(args.scenarios, args.nodes, args.repeat)
    return results


async def rollback_main(args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    starts, lists = [], []
    for database in args.databases:
        listed = args.history_runs
        progress(f"rollback on {database}: 1 warm-up + {args.repeat * 3} rollbacks; {listed} runs listed")
        if database == "sqlite":
            with tempfile.TemporaryDirectory(prefix="releaseflow-bench-") as directory:
                starts.append(
                    await rollback_bench.bench_rollback_start(
                        database, f"sqlite://{directory}/a.db", args.repeat * 3
                    )
                )
                lists.append(
                    await rollback_bench.bench_runs_list(
                        database, f"sqlite://{directory}/b.db", args.history_runs
                    )
                )
            continue
        with PostgresCluster() as admin_url:
            databases = FreshDatabases(admin_url)
            try:
                starts.append(
                    await rollback_bench.bench_rollback_start(database, databases.create(), args.repeat * 3)
                )
                lists.append(
                    await rollback_bench.bench_runs_list(database, databases.create(), args.history_runs)
                )
            finally:
                databases.drop_all()
    return starts, lists


async def release_main(args: argparse.Namespace) -> list[DriverResult | Skipped]:
    results: list[DriverResult | Skipped] = []
    for driver in args.drivers:
        progress(f"release on the {driver} driver: 1 warm-up + {args.release_repeat} deploys")
        bench = bench_local if driver == "local" else bench_docker
        result = await bench(args.release_repeat, progress)
        if isinstance(result, Skipped):
            progress(f"  {driver}: skipped: {result.reason}")
        results.append(result)
    return results


def run(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    options = {
        "suites": args.suite,
        "nodes": args.nodes,
        "databases": args.databases,
        "scenarios": args.scenarios,
        "repeat": args.repeat,
        "drivers": args.drivers,
        "release_repeat": args.release_repeat,
    }
    document: dict[str, Any] = {}
    if "engine" in args.suite:
        results = asyncio.run(main(args))
        print(table(results, args.repeat))
        document = as_json(results, options)
    else:
        # The same header (when, on what machine) without the engine's targets and results.
        header = as_json([], options)
        document = {key: header[key] for key in ("measured_at", "machine", "options")}
    if "release" in args.suite:
        released = asyncio.run(release_main(args))
        if "engine" in args.suite:
            print()
        print(release_report.table(released, args.release_repeat))
        document["release"] = release_report.as_json(released, args.release_repeat)
    if "cli" in args.suite:
        if document.get("release") or "engine" in args.suite:
            print()
        commands = cli_bench.bench_cli(args.cli_repeat, progress)
        print(cli_bench.table(commands))
        document["cli"] = cli_bench.as_json(commands)
    if "rollback" in args.suite:
        print()
        starts, lists = asyncio.run(rollback_main(args))
        print(rollback_bench.table(starts, lists))
        document["rollback"] = rollback_bench.as_json(starts, lists)
    progress(f"benchmark took {time.monotonic() - began:.0f}s")
    if args.json is not None:
        write_json(args.json, document)
        progress(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run())

"""``python -m tests.benchmarks`` (``make bench``): the engine benchmark on SQLite and PostgreSQL.

SQLite runs in a temporary file; PostgreSQL in a throwaway cluster of its own (or the server named by
RELEASEFLOW_TEST_POSTGRES_URL). Both are removed when the benchmark ends, however it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.benchmarks.engine_bench import SHAPES, ScenarioResult, Shape, bench_database
from tests.benchmarks.report import as_json, table, write_json
from tests.postgres_cluster import FreshDatabases, PostgresCluster

DATABASES = ("sqlite", "postgresql")


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
        description="Run release flows through the engine with a no-op driver; report what the engine costs.",
    )
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
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this path")
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.repeat < 1:
        parser.error("--nodes and --repeat must be at least 1")
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


def run(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    results = asyncio.run(main(args))
    print(table(results, args.repeat))
    progress(f"benchmark took {time.monotonic() - began:.0f}s")
    if args.json is not None:
        options = {
            "nodes": args.nodes,
            "databases": args.databases,
            "scenarios": args.scenarios,
            "repeat": args.repeat,
        }
        write_json(args.json, as_json(results, options))
        progress(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run())

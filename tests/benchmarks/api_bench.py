"""``python -m tests.benchmarks.api_bench [--clients 8] [--seconds 5] [--runs 200]``: the HTTP API under
concurrent clients.

Starts a real ``releaseflow serve`` on SQLite and on PostgreSQL (a throwaway cluster, or the server
named by RELEASEFLOW_TEST_POSTGRES_URL), applies the acceptance configuration, starts ``--runs`` runs of
a stage through the API and waits for them to end; then ``--clients`` concurrent clients (one
connection each) repeat one request for ``--seconds``: getting a run (every node's response) and
listing the stage's runs (the first page of 50). Prints requests per second and the median and
nearest-rank p95 latency of each. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time

import httpx
from tests.acceptance.api_support import FLOW, Api, served_api
from tests.acceptance.support import temporary_installation, wait_until
from tests.postgres_cluster import throwaway_database


def start_runs(api: Api, count: int) -> str:
    """Start ``count`` runs of Development, wait until every one ended; the id of the last."""
    last = ""
    for number in range(count):
        answer = api.call("POST", f"{FLOW}/runs", "deployer", json={"name": f"bench-{number}"})
        answer.raise_for_status()
        last = answer.json()["data"]["id"]
    wait_until(
        lambda: (
            api.call("GET", f"{FLOW}/runs", params={"concluded": "false"}).json()["pagination"]["count"] == 0
        ),
        timeout=300,
        what="every run to end",
    )
    return last


async def hammer(api: Api, path: str, clients: int, seconds: float) -> list[float]:
    """Latencies (seconds) of every request ``clients`` concurrent clients sent in ``seconds``."""
    headers = {"Authorization": f"Bearer {api.tokens['viewer']}"}
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def client() -> None:
        async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=30) as http:
            while time.monotonic() < stop:
                began = time.perf_counter()
                answer = await http.get(path)
                latencies.append(time.perf_counter() - began)
                answer.raise_for_status()

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def bench(database: str, url: str | None, args: argparse.Namespace) -> list[str]:
    with temporary_installation("rf-api-bench-") as releaseflow:
        if url:
            releaseflow.extra_env["RELEASEFLOW_DATABASE_URL"] = url
        api = served_api(releaseflow)
        run_id = start_runs(api, args.runs)
        rows = []
        for what, path in (("get a run", f"{FLOW}/runs/{run_id}"), ("list runs (50)", f"{FLOW}/runs")):
            latencies = asyncio.run(hammer(api, path, args.clients, args.seconds))
            rps = len(latencies) / args.seconds
            p50, p95 = (percentile(latencies, share) * 1000 for share in (0.5, 0.95))
            figures = f"{args.clients} | {len(latencies)} | {rps:.0f} | {p50:.1f} | {p95:.1f}"
            rows.append(f"| {database} | {what} | {figures} |")
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.api_bench")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=200, help="runs in the stage (the list shows 50)")
    args = parser.parse_args()
    rows = bench("sqlite", None, args)
    with throwaway_database() as url:
        rows += bench("postgresql", url, args)
    print("| database | request | clients | requests | per second | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

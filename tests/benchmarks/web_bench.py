"""``python -m tests.benchmarks.web_bench [--runs 100000] [--changes 10]``: the web interface on a long
history, in a real browser.

A SQLite database gets one stage with ``--runs`` concluded runs, an hour apart up to now
(history_bench's seed), then a real
``releaseflow serve --no-worker`` serves it and Debian's chromium (headless, Playwright) signs in.
Timed: the first render of the pipeline overview, a run view, what's where (until the delivery
figures it loads after it is shown have arrived: 30 days of runs) and those figures
alone, the version history, the stage's settings and the approvals (navigation start to the page's
load event, and the server's answer alone over HTTP), each the median and max of ``--repeat`` loads.
Then, ``--changes`` times: a new run is opened in the browser, this process aborts it through the
engine, and the browser notes the moment the aborted status appears (a MutationObserver): the delay
from the commit to the screen, over server-sent events. Both clocks are this machine's. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from playwright.sync_api import Page
from tests.acceptance.browser import chromium, sign_in
from tests.acceptance.support import Releaseflow, temporary_installation
from tests.benchmarks.history_bench import PIPELINE, PROJECT, STAGE, seed

from releaseflow.engine.clock import SystemClock
from releaseflow.engine.commands import Engine, RunRequest
from releaseflow.store.database import open_database
from releaseflow.web import live

T = TypeVar("T")

# Notes (once) when the run's status badge first says "aborted", in the browser's clock (epoch ms).
WATCH_ABORT = """
window.__abortedAt = null;
document.addEventListener("DOMContentLoaded", () => {
  new MutationObserver(() => {
    if (window.__abortedAt === null && document.querySelector("#run-live .run-status .status-aborted"))
      window.__abortedAt = Date.now();
  }).observe(document.body, {subtree: true, childList: true});
});
"""


def median_and_max(samples: list[float]) -> str:
    return f"{statistics.median(samples):.0f} | {max(samples):.0f}"


def timed_ms(action: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def bench(runs: int, repeat: int, changes: int) -> None:
    with temporary_installation("releaseflow-web-bench-") as releaseflow:
        database = f"sqlite:///{releaseflow.cwd / 'bench.db'}"
        releaseflow.extra_env["RELEASEFLOW_DATABASE_URL"] = database
        releaseflow.cli("db", "migrate", check=True)
        began = time.perf_counter()
        asyncio.run(seed_history(database, runs))
        print(f"seeded {runs:,} runs in {time.perf_counter() - began:.1f}s", flush=True)
        releaseflow.serve("serve", "--no-worker")
        assert releaseflow.admin_token
        newest = asyncio.run(start_run(database))
        web = f"{releaseflow.url}/web"
        overview, run_view = f"{web}/p/{PROJECT}/{PIPELINE}", f"{web}/runs/{newest}"
        # (name, url, what shows the page is complete: its load event, or an element a fragment
        # loaded after it brings)
        pages = (
            ("pipeline overview", overview, None),
            ("run view", run_view, None),
            ("what's where, with its figures", f"{overview}/state", "#figures"),
            ("what's where: the figures alone (30 days)", f"{overview}/state/figures", None),
            ("version history", f"{overview}/{STAGE}/versions", None),
            ("stage settings", f"{overview}/{STAGE}/settings", None),
            ("approvals", f"{web}/approvals", None),
        )
        print(f"| page ({runs:,} runs in the stage) | measured | median ms | max ms |")
        print("|---|---|---|---|")
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.add_init_script(WATCH_ABORT)
            sign_in(page, releaseflow.url, releaseflow.admin_token)
            cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
            with httpx.Client(cookies=cookies, timeout=30) as http:
                for name, url, complete in pages:
                    answered = timed_ms(lambda url=url: http.get(url).raise_for_status(), repeat)
                    print(f"| {name} | server answer (HTTP) | {median_and_max(answered)} |", flush=True)
                    loaded = timed_ms(lambda url=url, complete=complete: show(page, url, complete), repeat)
                    print(f"| {name} | first render (browser load) | {median_and_max(loaded)} |", flush=True)
            delays = [status_change_delay(page, releaseflow, database) for _ in range(changes)]
        print(f"| a run's status change | commit to screen (SSE) | {median_and_max(delays)} |", flush=True)


def show(page: Page, url: str, complete: str | None) -> None:
    page.goto(url, wait_until="load")
    if complete is not None:
        page.wait_for_selector(complete, timeout=60_000)


async def seed_history(database: str, runs: int) -> None:
    db = await open_database(database)
    try:
        # Ending now, as a real history does: the pages' windows (the last 30 days) hold a month of it.
        await seed(db, runs, start=datetime.now(UTC) - timedelta(hours=runs + 1))
        # seed writes the runs straight into the table: new runs number on after them.
        async with db.transaction() as tx:
            await tx.execute("UPDATE release_flows SET next_run_seq = ?", (runs + 1,))
    finally:
        await db.close()


async def start_run(database: str) -> str:
    db = await open_database(database)
    try:
        run = await Engine(db, SystemClock()).start_run(PROJECT, PIPELINE, STAGE, RunRequest(name="bench"))
        return run.id
    finally:
        await db.close()


async def abort(database: str, run_id: str) -> float:
    """Abort the run; the moment (epoch ms) its events were committed."""
    db = await open_database(database)
    try:
        await Engine(db, SystemClock()).abort_run(run_id, "web benchmark")
        return time.time() * 1000
    finally:
        await db.close()


def beside_the_browser(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on a thread of its own: Playwright's sync API holds this thread's event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()


def status_change_delay(page: Page, releaseflow: Releaseflow, database: str) -> float:
    run_id = beside_the_browser(start_run(database))
    page.goto(f"{releaseflow.url}/web/runs/{run_id}", wait_until="load")
    # The event stream is connected and has sent what it had; a random extra wait lands the change
    # anywhere in the stream's polling period, not always at one phase of it.
    time.sleep(1.0 + random.uniform(0, live.POLL_SECONDS))
    committed = beside_the_browser(abort(database, run_id))
    page.wait_for_function("window.__abortedAt !== null", timeout=10_000)
    shown: float = page.evaluate("window.__abortedAt")
    return shown - committed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.web_bench")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--changes", type=int, default=10)
    args = parser.parse_args()
    bench(args.runs, args.repeat, args.changes)


if __name__ == "__main__":
    main()

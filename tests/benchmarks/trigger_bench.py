"""Trigger figures against a real ``releaseflow serve`` (SQLite): how long a webhook call and a signed
GitHub delivery take to answer, and how the delivery's cost grows with the flows it is decided for.

``python -m tests.benchmarks.trigger_bench [--flows 1,20,100] [--requests 30]`` prints a table; it
asserts nothing. Each flow is one stage with a git trigger on the same repository and one Message node
to the server's inbox. ``webhook``: GET on one flow's URL, a run started each time. ``github``: a signed
push decided for every flow, each starting a run (``allow``). ``github paused``: the same with every
flow paused, so the figure is the decision alone.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml
from tests.acceptance.config import INBOX_KEY
from tests.acceptance.support import Releaseflow, free_port
from tests.benchmarks.engine_bench import percentile

SECRET = "bench-secret"
REPO = "https://github.com/acme/bench"


def _config(folder: Path, server_url: str, flows: int, *, paused: bool) -> Path:
    def flow() -> dict[str, Any]:
        return {
            "apiVersion": "v1.2",
            "triggers": [
                {"ref": "git", "vcsService": "github", "repoUrl": REPO, "branchRestrictions": ["main"]}
            ],
            "options": {"paused": paused},
            "spec": {
                "kind": "Workflow",
                "spec": {
                    "type": "sequential",
                    "steps": [
                        {
                            "kind": "Message",
                            "ref": "say",
                            "spec": {
                                "kind": "RAW_WEBHOOK",
                                "spec": {
                                    "webhookUrl": f"{server_url}/inbox/{INBOX_KEY}/bench",
                                    "message": "${refs.git.sha}",
                                },
                            },
                        }
                    ],
                },
            },
        }

    pipelines = [
        {"id": f"flow-{index:03d}", "stages": [{"name": "Development", "releaseFlow": flow()}]}
        for index in range(flows)
    ]
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump({"projects": [{"id": "bench", "pipelines": pipelines}]}), encoding="utf-8")
    return path


def _push(number: int) -> tuple[bytes, dict[str, str]]:
    sha = hashlib.sha1(str(number).encode()).hexdigest()
    body = json.dumps({"ref": "refs/heads/main", "after": sha, "repository": {"html_url": REPO}}).encode()
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": f"bench-{number}",
        "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }
    return body, headers


def _timed(requests: int, send: Callable[[int], httpx.Response]) -> list[float]:
    took = []
    for number in range(requests):
        started = time.perf_counter()
        response = send(number)
        took.append((time.perf_counter() - started) * 1000)
        if response.status_code not in (201, 202):
            raise RuntimeError(f"unexpected answer {response.status_code}: {response.text}")
    return took


def bench(flows: int, requests: int, *, paused: bool) -> list[tuple[str, int, list[float]]]:
    folder = Path(tempfile.mkdtemp(prefix="rf-trigger-bench-"))
    server = Releaseflow(data_dir=folder / "data", port=free_port(), cwd=folder)
    server.extra_env.update(RELEASEFLOW_GITHUB_WEBHOOK_SECRET=SECRET, RELEASEFLOW_GIT_POLL_SECONDS="0")
    try:
        server.serve()
        server.cli("apply", "-f", str(_config(folder, server.url, flows, paused=paused)), check=True)
        with httpx.Client(timeout=60) as client:
            results = []
            github = _timed(
                requests,
                lambda n: client.post(f"{server.url}/hooks/github", content=_push(n)[0], headers=_push(n)[1]),
            )
            results.append(("github paused" if paused else "github", flows, github))
            if not paused:
                url = server.cli("webhook", "rotate", "flow-000", "Development", check=True).stdout.strip()
                webhook = _timed(requests, lambda n: client.get(url, params={"git.sha": f"{n:040x}"}))
                results.append(("webhook", flows, webhook))
        return results
    finally:
        server.kill_all()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.trigger_bench")
    parser.add_argument(
        "--flows", default="1,20,100", help="flows with a trigger on the repository (comma-separated)"
    )
    parser.add_argument("--requests", type=int, default=30, help="requests per figure (default 30)")
    args = parser.parse_args(argv)
    rows = []
    for flows in (int(text) for text in args.flows.split(",")):
        for paused in (True, False):
            rows.extend(bench(flows, args.requests, paused=paused))
    print(f"{'request':<14} {'flows':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'ms/flow':>8}")
    for name, flows, took in rows:
        median = statistics.median(took)
        print(
            f"{name:<14} {flows:>5} {median:>8.1f} {percentile(took, 0.95):>8.1f} {max(took):>8.1f}"
            + (f" {median / flows:>8.2f}" if name.startswith("github") else f" {'-':>8}")
        )


if __name__ == "__main__":
    main()

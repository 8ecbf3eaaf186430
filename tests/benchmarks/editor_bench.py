"""``python -m tests.benchmarks.editor_bench [--repeat 10]``: how fast the release flow editor answers.

A real ``releaseflow serve`` holds the acceptance tests' project (stage Development). Timed over HTTP:
the editor's check (the engine's validator, the drawing and both renderings) of a template of 10, 100
and 1,000 Approval nodes, valid and with one error in every node. Timed in Debian's chromium (headless,
Playwright): from the text changing to its inline error on the screen, which includes the editor's
300 ms pause after typing. Median and max of ``--repeat``; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import httpx
from tests.acceptance import web_forms
from tests.acceptance.browser import chromium, sign_in
from tests.acceptance.support import temporary_installation
from tests.acceptance.test_web_editor import EDITOR, served
from tests.acceptance.web_forms import session_csrf

# Notes the moment (browser clock, epoch ms) the issues list next shows an error.
WATCH_ISSUES = """
() => {
  window.__shownAt = null;
  new MutationObserver((_, observer) => {
    if (!document.querySelector("#flow-issues .issue")) return;
    observer.disconnect();
    window.__shownAt = Date.now();
  }).observe(document.getElementById("flow-issues"), {subtree: true, childList: true});
  return Date.now();
}
"""


def approvals(count: int, amount: int) -> dict[str, Any]:
    steps = [
        {"kind": "Approval", "ref": f"approve-{index}", "spec": {"amount": amount}} for index in range(count)
    ]
    return {
        "apiVersion": "v1.2",
        "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": steps}},
    }


def figures(samples: list[float]) -> str:
    return f"{statistics.median(samples):.0f} | {max(samples):.0f}"


def bench(repeat: int) -> None:
    with temporary_installation("releaseflow-editor-bench-") as releaseflow:
        served(releaseflow)
        assert releaseflow.admin_token
        print("| measured | median ms | max ms |")
        print("|---|---|---|")
        with httpx.Client(base_url=releaseflow.url, timeout=30) as client:
            signed = web_forms.sign_in(client, {"token": releaseflow.admin_token}, web="/web")
            assert signed.status_code == 303, signed.text
            csrf = session_csrf(client.get(EDITOR).text)
            for count in (10, 100, 1000):
                for amount, what in ((1, "valid"), (0, "an error in every node")):
                    text = json.dumps(approvals(count, amount), indent=2)
                    samples = []
                    for _ in range(repeat):
                        began = time.perf_counter()
                        answer = client.post(f"{EDITOR}/check", data={"csrf": csrf, "text": text})
                        samples.append((time.perf_counter() - began) * 1000)
                        assert answer.json()["valid"] is (amount == 1)
                    print(f"| check over HTTP, {count:,} nodes, {what} | {figures(samples)} |", flush=True)
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            sign_in(page, releaseflow.url, releaseflow.admin_token)
            samples = []
            for attempt in range(repeat):
                page.goto(f"{releaseflow.url}{EDITOR}")
                page.wait_for_selector("#flow-issues .valid")
                began = page.evaluate(WATCH_ISSUES)
                page.fill("#flow-text", json.dumps(approvals(10, 0)) + " " * attempt)
                page.wait_for_function("window.__shownAt !== null")
                samples.append(float(page.evaluate("window.__shownAt")) - began)
            print(f"| text changed to its inline error on the screen (10 nodes) | {figures(samples)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=10)
    bench(parser.parse_args().repeat)


if __name__ == "__main__":
    main()

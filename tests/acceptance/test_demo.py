"""The newcomer path: ``releaseflow demo`` in an empty directory sets up, runs, and serves."""

from __future__ import annotations

from typing import Any

from tests.acceptance.support import Releaseflow, wait_until


def test_demo__starts_and_its_first_run_delivers_messages(releaseflow: Releaseflow) -> None:
    # No RELEASEFLOW_DATA_DIR: the demo uses ./data of the directory it is started in.
    releaseflow.extra_env["RELEASEFLOW_DATA_DIR"] = ""
    releaseflow.serve("demo")

    def five_messages() -> list[dict[str, Any]] | None:
        found = releaseflow.inbox("development")
        return found if len(found) >= 5 else None

    messages = wait_until(five_messages, what="the demo run's five messages")
    runs = releaseflow.cli_json("runs", "web", "Development", "--json")

    assert (releaseflow.cwd / "data" / "releaseflow.db").exists()
    assert [run["status"] for run in runs] == ["success"]
    assert runs[0]["name"] == "First demo run"
    assert messages[0]["body"]["message"] == "A release of web to Development is starting"
    assert messages[-1]["body"]["message"].endswith("answered with HTTP 200)")
    output = releaseflow.logs()
    assert f"releaseflow show {runs[0]['id'][:8]}" in output
    assert "releaseflow run web Production --follow" in output
    assert f"curl {releaseflow.url}/inbox/production" in output

"""The newcomer path: ``releaseflow demo`` in an empty directory builds, deploys and serves.

Then, as the README tells a person: promote to Staging, release to Production, see each stage
answer with its version over HTTP, commit a new version and see Development answer with it.
"""

from __future__ import annotations

import subprocess

import httpx
from tests.acceptance.support import Releaseflow, wait_until

from releaseflow.demo import service_ports


def answer(port: int) -> str | None:
    response = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    return response.text.strip() if response.status_code == 200 else None


def answer_or_none(port: int) -> str | None:
    try:
        return answer(port)
    except httpx.HTTPError:
        return None


def test_demo__builds_deploys_promotes_and_releases_then_keeps_it_all_until_reset(
    releaseflow: Releaseflow,
) -> None:
    # No RELEASEFLOW_DATA_DIR: the demo uses ./data of the directory it is started in.
    releaseflow.extra_env["RELEASEFLOW_DATA_DIR"] = ""
    server = releaseflow.serve("demo")
    ports = service_ports(releaseflow.port)

    first = wait_until(
        lambda: (
            (runs := releaseflow.cli_json("runs", "web", "Development", "--json"))
            and runs[0]["concluded"]
            and runs[0]
        ),
        timeout=60,
        what="the first demo run",
    )
    assert (first["name"], first["status"]) == ("First demo run", "success")
    assert answer(ports["Development"]) == "demo web v1 (development)"

    for stage in ("Staging", "Production"):
        result = releaseflow.cli("run", "web", stage, "--follow", timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
    assert answer(ports["Staging"]) == "demo web v1 (staging)"
    assert answer(ports["Production"]) == "demo web v1 (production)"
    (message,) = releaseflow.inbox("production")
    assert "migration exit code 0" in message["body"]["message"]
    state = releaseflow.cli("state", "web", check=True).stdout
    assert "web-dev" in state and "web-staging" in state and "migrate" in state
    side_by_side, detail = state.split("\n\n", 1)
    assert "Development → Staging: same" in side_by_side and "Staging → Production: same" in side_by_side
    stages = [line.split()[0] for line in detail.splitlines()[1:]]
    assert stages == sorted(stages, key=["Development", "Staging", "Production"].index)  # pipeline order

    repository = releaseflow.cwd / "data" / "demo" / "app"
    (repository / "VERSION").write_text("v2\n")
    subprocess.run(
        [
            "git",
            "-C",
            str(repository),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t.invalid",
            "commit",
            "-qam",
            "v2",
        ],
        check=True,
    )
    # The server watches the demo's repository: the commit starts a Development run by itself.
    pushed = wait_until(
        lambda: (
            (runs := releaseflow.cli_json("runs", "web", "Development", "--json"))
            and len(runs) == 2
            and runs[0]["concluded"]
            and runs[0]
        ),
        timeout=120,
        what="the Development run the commit started",
    )
    assert (pushed["status"], pushed["origin"]["kind"]) == ("success", "git"), pushed
    assert answer(ports["Development"]) == "demo web v2 (development)"
    assert answer(ports["Production"]) == "demo web v1 (production)"
    service_log = releaseflow.cli("logs", "service", "web-dev", "--lines", "50", check=True).stdout
    assert '"GET / HTTP/1.1" 200' in service_log
    output = releaseflow.logs()
    assert f"curl http://127.0.0.1:{ports['Production']}/" in output
    assert "releaseflow run web Staging --follow" in output

    # A later `releaseflow demo` serves what is there: the person's edits, runs and services.
    flow_file = releaseflow.cwd / "data" / "demo" / "development.yaml"
    flow_file.write_text(flow_file.read_text() + "# my edit\n")
    assert Releaseflow.stop(server) == 0
    server = releaseflow.serve("demo")
    assert flow_file.read_text().endswith("# my edit\n")
    runs = releaseflow.cli_json("runs", "web", "Development", "--json")
    assert [run["name"] for run in runs] == [None, "First demo run"]  # no new run was started
    assert answer(ports["Development"]) == "demo web v2 (development)"
    assert "was set up before" in releaseflow.logs() and "web-dev" in releaseflow.logs()

    # --reset stops what the old demo runs and starts afresh.
    assert Releaseflow.stop(server) == 0
    releaseflow.serve("demo", "--reset")
    assert "# my edit" not in flow_file.read_text()
    fresh = wait_until(
        lambda: (
            (runs := releaseflow.cli_json("runs", "web", "Development", "--json"))
            and runs[0]["concluded"]
            and runs
        ),
        timeout=60,
        what="the first run of the reset demo",
    )
    assert [(run["name"], run["status"]) for run in fresh] == [("First demo run", "success")]
    assert answer(ports["Development"]) == "demo web v1 (development)"
    assert answer_or_none(ports["Production"]) is None  # the old demo's services were stopped

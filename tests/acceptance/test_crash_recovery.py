"""Crash recovery with real processes: kill -9 the server mid-run, start it again, the run goes on."""

from __future__ import annotations

from tests.acceptance.config import write_config
from tests.acceptance.support import Releaseflow, SlowEndpoint, find_node, started_run_id, wait_until


def test_crash__a_run_waiting_for_approval_resumes_after_restart(releaseflow: Releaseflow) -> None:
    server = releaseflow.serve()
    releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url)), check=True)
    run_id = started_run_id(releaseflow.cli("run", "main", "Production", check=True).stdout)
    releaseflow.wait_for_node(run_id, "gate", "waiting")

    server.kill()
    server.wait(timeout=10)
    releaseflow.serve()
    approved = releaseflow.cli("approve", run_id[:8], "gate", "--as", "alice")

    assert approved.returncode == 0, approved.stderr
    detail = releaseflow.wait_for_run(run_id, ("success", "failed", "aborted"))
    assert detail["status"] == "success"
    assert find_node(detail["spec"], "gate")["response"]["data"]["approvals"] == ["alice"]  # type: ignore[index]
    # The restarted server's inbox got the message sent after the approval.
    assert [message["body"]["message"] for message in releaseflow.inbox("prod")] == ['approved by ["alice"]']


def test_crash__a_message_in_flight_is_sent_again_after_restart(releaseflow: Releaseflow) -> None:
    with SlowEndpoint() as endpoint:
        server = releaseflow.serve()
        releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url)), check=True)
        started = releaseflow.cli(
            "run", "relay", "Development", "--arg", f"target={endpoint.url}", check=True
        )
        run_id = started_run_id(started.stdout)
        wait_until(lambda: len(endpoint.requests) == 1, what="the first delivery to reach the slow endpoint")

        server.kill()  # SIGKILL while the worker holds the node's lease and waits for the answer
        server.wait(timeout=10)
        releaseflow.serve()

        detail = releaseflow.wait_for_run(run_id, ("success", "failed", "aborted"))
    assert detail["status"] == "success"
    slow = find_node(detail["spec"], "slow")
    assert slow is not None
    # The lost attempt is resumed, not counted: the same attempt, under the same key.
    assert slow["attempts"] == 1
    assert [entry["status"] for entry in slow["attemptLog"]] == ["lost", "success"]
    assert "lost its lease" in slow["attemptLog"][0]["error"]["message"]
    keys = [request["headers"]["Idempotency-Key"] for request in endpoint.requests]
    assert keys == [f"{run_id}/spec.spec.steps[0]/1"] * 2
    assert [message["body"]["message"] for message in releaseflow.inbox("relay")] == ["done"]

"""Notifications and approvals with real processes: the CLI, `releaseflow serve`, a real HTTP receiver,
and a kill -9 between a run's events and their delivery."""

from __future__ import annotations

import getpass

from tests.acceptance.config import PROJECT, write_config
from tests.acceptance.support import Releaseflow, started_run_id, wait_until
from tests.integration.http_receiver import Receiver

from releaseflow.domain.notifications import DELIVERY_HEADER

SECRET = "acceptance-shared-secret"


def test_notifications__survive_a_kill_between_the_event_and_its_delivery(releaseflow: Releaseflow) -> None:
    receiver = Receiver(secret=SECRET, hold=1)  # the first request is held until the server is dead
    try:
        server = releaseflow.serve()
        releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url)), check=True)
        added = releaseflow.cli(
            "notifications", "add", "--project", PROJECT, "--pipeline", "main", "--url", receiver.url,
            "--secret", SECRET, "--event", "started", "--event", "succeeded", check=True,
        )  # fmt: skip
        assert added.stdout.startswith("subscription sub-") and "signing secret" not in added.stdout
        run_id = started_run_id(releaseflow.cli("run", "main", "Production", check=True).stdout)
        releaseflow.wait_for_node(run_id, "gate", "waiting")
        wait_until(lambda: len(receiver.deliveries) == 1, what="the started event to reach the receiver")

        server.kill()  # SIGKILL while the started event is in flight
        server.wait(timeout=10)
        receiver.release()
        # The run succeeds while no server runs: its event waits in the outbox.
        releaseflow.cli("approve", run_id[:8], "gate", "--as", "alice", check=True)
        releaseflow.serve()

        wait_until(
            lambda: len(receiver.deliveries) >= 3, what="both events to be delivered after the restart"
        )
        log = wait_until(
            lambda: (
                (out := releaseflow.cli("notifications", "log", check=True).stdout).count("delivered") == 2
                and out
            ),
            what="the delivery log to show both delivered",
        )
    finally:
        receiver.close()
    started = [d for d in receiver.deliveries if d.body["event"] == "started"]
    succeeded = [d for d in receiver.deliveries if d.body["event"] == "succeeded"]
    # At least once: the started event arrived twice under one delivery id, the receiver's key to dedupe.
    assert [d.status for d in started] == [None, 200]
    assert len({d.headers[DELIVERY_HEADER] for d in started}) == 1
    assert [d.status for d in succeeded] == [200]
    assert all(d.signed for d in receiver.deliveries)
    assert f"{run_id}/running/" in log and "attempt 2" in log and ": 200 ok" in log


def test_cli__approvals_and_notifications(releaseflow: Releaseflow) -> None:
    releaseflow.serve()
    releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url)), check=True)
    run_id = started_run_id(releaseflow.cli("run", "main", "Production", check=True).stdout)
    releaseflow.wait_for_node(run_id, "gate", "waiting")
    me = getpass.getuser()

    waiting = releaseflow.cli("approvals", check=True).stdout
    assert (
        run_id[:8] in waiting and "gate" in waiting and f"anyone but {me}" in waiting and "never" in waiting
    )
    assert releaseflow.cli("approvals", "--for", me, check=True).stdout.startswith(
        "no approval is waiting for"
    )
    assert "gate" in releaseflow.cli("approvals", "--for", "alice", check=True).stdout
    refused = releaseflow.cli("approve", run_id[:8], "gate", "--as", me)
    assert refused.returncode == 1
    assert f"{me} started this run and cannot approve or reject it" in refused.stderr

    added = releaseflow.cli(
        "notifications", "add", "--project", PROJECT, "--kind", "slack", "--url", "http://127.0.0.1:9/hook",
        check=True,
    )  # fmt: skip
    subscription = added.stdout.split()[1].rstrip(":")
    secret = added.stdout.split("keep it with the receiver): ")[1].strip()
    listed = releaseflow.cli("notifications", "list", check=True).stdout
    assert subscription in listed and "slack" in listed and secret not in listed and secret[:4] not in listed
    bad = releaseflow.cli("notifications", "add", "--project", PROJECT, "--url", "x", "--event", "deploy")
    assert bad.returncode == 2
    assert (
        "url: 'x' is not an http:// or https:// URL" in bad.stderr
        and "events[0]: unknown event" in bad.stderr
    )
    releaseflow.cli("notifications", "remove", subscription, check=True)
    assert (
        releaseflow.cli("notifications", "list", check=True).stdout.strip() == "no notification subscription"
    )
    gone = releaseflow.cli("notifications", "remove", subscription)
    assert gone.returncode == 2 and f"no notification subscription '{subscription}'" in gone.stderr


def test_cli__secret_arguments_are_masked_in_every_output(releaseflow: Releaseflow) -> None:
    secret = "s3cret-token-value"
    releaseflow.serve()
    releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url)), check=True)
    started = releaseflow.cli("run", "main", "Production", "--secret-arg", f"TOKEN={secret}", check=True)
    run_id = started_run_id(started.stdout)
    releaseflow.wait_for_node(run_id, "gate", "waiting")

    shown = releaseflow.cli("show", run_id[:8], "--events", check=True).stdout
    as_json = releaseflow.cli("show", run_id[:8], "--json", check=True).stdout
    assert "TOKEN=••••" in shown
    assert releaseflow.cli_json("show", run_id[:8], "--json")["arguments"]["TOKEN"] == "••••"
    for output in (started.stdout, shown, as_json):
        assert secret not in output
    key_file = releaseflow.data_dir / "secret.key"
    assert key_file.exists() and key_file.stat().st_mode & 0o077 == 0

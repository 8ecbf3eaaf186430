"""The command line against a real ``releaseflow serve`` process: apply, run, follow, show, abort."""

from __future__ import annotations

from tests.acceptance.config import write_config
from tests.acceptance.support import Releaseflow, find_node, free_port, started_run_id


def test_serve__apply_run_follow_and_show(releaseflow: Releaseflow) -> None:
    server = releaseflow.serve()
    config = write_config(releaseflow.cwd, releaseflow.url)

    first = releaseflow.cli("apply", "-f", str(config), check=True)
    again = releaseflow.cli("apply", "-f", str(config), check=True)
    followed = releaseflow.cli(
        "run", "main", "development", "--name", "smoke", "--arg", "who=tests", "--follow"
    )

    assert "+ release flow acme/main/Development" in first.stdout
    assert again.stdout.startswith("nothing to change")
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert "3/3 nodes done" in followed.stdout
    run_id = started_run_id(followed.stdout)
    delivered = releaseflow.inbox("dev")
    assert len(delivered) == 3
    assert delivered[0]["body"]["message"] == "hello from tests"

    detail = releaseflow.run_detail(run_id[:8])
    hello = find_node(detail["spec"], "hello")
    assert detail["status"] == "success" and detail["name"] == "smoke"
    assert detail["progress"] == {"done": 3, "total": 3}
    assert hello is not None
    assert hello["response"]["status"] == "success"
    assert hello["response"]["data"]["statusCode"] == 200
    assert hello["code"]["spec"]["spec"]["message"] == "hello from tests"  # resolved code

    listed = releaseflow.cli_json("runs", "main", "Development", "--json")
    tree = releaseflow.cli("show", run_id, check=True).stdout
    assert [run["id"] for run in listed] == [run_id]
    assert "✓ success  hello (Message)" in tree
    second = releaseflow.cli("serve", "--port", str(free_port()))
    assert second.returncode == 1 and "another releaseflow process" in second.stderr  # SQLite: one server
    assert releaseflow.stop(server) == 0


def test_run__follow_exits_non_zero_when_the_run_fails(releaseflow: Releaseflow) -> None:
    releaseflow.serve()
    releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url)), check=True)

    followed = releaseflow.cli("run", "main", "Staging", "--follow")

    assert followed.returncode == 1, followed.stdout + followed.stderr
    assert "ended: failed" in followed.stdout
    detail = releaseflow.run_detail(started_run_id(followed.stdout))
    broken = find_node(detail["spec"], "broken")
    never = find_node(detail["spec"], "never")
    assert broken is not None and never is not None
    assert broken["response"]["status"] == "failure"
    assert broken["response"]["error"]["code"] == 404
    assert never["status"] == "skipped"


def test_abort__stops_a_run_waiting_for_approval(releaseflow: Releaseflow) -> None:
    releaseflow.serve()
    releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url)), check=True)
    run_id = started_run_id(releaseflow.cli("run", "main", "Production", check=True).stdout)
    waiting = releaseflow.wait_for_node(run_id, "gate", "waiting")
    assert waiting["status"] == "running"
    assert waiting["spec"]["status"] == "waiting"  # the root workflow shows the roll-up: the wait
    assert find_node(waiting["spec"], "gate")["response"]["status"] == "approval_wait"  # type: ignore[index]

    aborted = releaseflow.cli("abort", run_id[:8])

    assert aborted.returncode == 0, aborted.stderr
    detail = releaseflow.wait_for_run(run_id, ("aborted",))
    assert find_node(detail["spec"], "after")["status"] == "aborted"  # type: ignore[index]
    assert [message["body"]["message"] for message in releaseflow.inbox("prod")] == ["asking for approval"]
    again = releaseflow.cli("abort", run_id)
    assert again.returncode == 1 and again.stderr.startswith("error: ")


def test_reject__fails_the_approval_with_the_reason(releaseflow: Releaseflow) -> None:
    releaseflow.serve()
    releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url)), check=True)
    run_id = started_run_id(releaseflow.cli("run", "main", "Production", check=True).stdout)
    releaseflow.wait_for_node(run_id, "gate", "waiting")

    rejected = releaseflow.cli("reject", run_id[:8], "gate", "--as", "carol", "--reason", "code freeze")

    assert rejected.returncode == 0, rejected.stderr
    detail = releaseflow.wait_for_run(run_id, ("failed",))
    gate = find_node(detail["spec"], "gate")
    assert gate is not None and gate["status"] == "failed"
    assert gate["error"]["message"] == "rejected by carol: code freeze"
    assert find_node(detail["spec"], "after")["status"] == "skipped"  # type: ignore[index]


def test_cli__bad_input_exits_2_and_names_the_problem(releaseflow: Releaseflow) -> None:
    releaseflow.cli("db", "migrate", check=True)
    releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url)), check=True)

    unknown_stage = releaseflow.cli("run", "main", "qa")
    unknown_run = releaseflow.cli("show", "ffffffff")
    bad_override = releaseflow.cli("run", "main", "Development", "--override", "nosuch.x=1")

    assert unknown_stage.returncode == 2
    assert (
        "no stage 'qa'" in unknown_stage.stderr and "Development, Staging, Production" in unknown_stage.stderr
    )
    assert unknown_run.returncode == 2
    assert bad_override.returncode == 2
    assert "overrides.nosuch: no node has ref 'nosuch'" in bad_override.stderr


def test_validate__lists_every_problem_with_its_path_and_exits_1(releaseflow: Releaseflow) -> None:
    broken = releaseflow.cwd / "broken.yaml"
    broken.write_text(
        "apiVersion: v1.2\nspec:\n  kind: Workflow\n  spec:\n    type: sideways\n"
        "    steps:\n      - kind: Teleport\n",
        encoding="utf-8",
    )

    result = releaseflow.cli("validate", "-f", str(broken))
    valid = releaseflow.cli("validate", "-f", str(write_config(releaseflow.cwd, releaseflow.url)))

    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: release flow template") and "(2 errors)" in lines[0]
    assert any(line.strip().startswith("spec.spec.type:") for line in lines[1:])
    assert any(line.strip().startswith("spec.spec.steps[0].kind:") for line in lines[1:])
    assert valid.returncode == 0 and "valid configuration" in valid.stdout

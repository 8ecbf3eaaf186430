"""Plan, resume and the history commands from the command line, against a real server process."""

from __future__ import annotations

import json

from tests.acceptance.config import INBOX_KEY, write_config
from tests.acceptance.support import Releaseflow, find_node, started_run_id


def test_plan_resume_and_history__from_the_command_line(releaseflow: Releaseflow) -> None:
    releaseflow.serve()
    releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url)), check=True)

    plan = releaseflow.cli("plan", "main", "staging", "--arg", "who=me", check=True).stdout
    assert "nothing was started" in plan and "admission: starts at once" in plan
    assert "broken (Message)" in plan and "never (Message)" in plan
    assert (
        releaseflow.cli("runs", "main", "Staging", check=True).stdout.strip()
        == "no runs of acme/main/Staging yet"
    )

    failed = releaseflow.cli("run", "main", "Staging", "--follow")
    assert failed.returncode == 1
    failed_id = started_run_id(failed.stdout)
    fixed = {"webhookUrl": f"{releaseflow.url}/inbox/{INBOX_KEY}/stg", "message": "fixed"}
    resumed = releaseflow.cli(
        "resume", failed_id[:8], "--override", f"broken.spec={json.dumps(fixed)}", "--follow"
    )

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    resumed_id = started_run_id(resumed.stdout)
    assert f"(resumes {failed_id})" in resumed.stdout
    assert [message["body"]["message"] for message in releaseflow.inbox("stg")] == ["fixed", "x"]
    detail = releaseflow.run_detail(resumed_id)
    assert detail["resumedFrom"] == failed_id
    assert find_node(detail["spec"], "broken")["status"] == "success"  # type: ignore[index]
    kept = releaseflow.cli("show", resumed_id, "--plan", check=True).stdout
    assert f"the plan run {resumed_id} was started with" in kept and "overrides: broken=" in kept

    again = releaseflow.cli("resume", failed_id)
    not_failed = releaseflow.cli("resume", resumed_id)
    assert again.returncode == 1 and f"already resumed by run {resumed_id} (success)" in again.stderr
    assert not_failed.returncode == 1 and "only a failed run can be resumed" in not_failed.stderr

    diff = releaseflow.cli("diff", failed_id, resumed_id, check=True).stdout
    assert "template: same" in diff and "overrides:\n  broken: (none) → " in diff
    as_json = releaseflow.cli_json("diff", failed_id, resumed_id, "--json")
    assert as_json["overrides"] == [{"key": "broken", "second": {"spec": fixed}}]  # the first run had none
    assert (as_json["first"]["id"], as_json["template"], as_json["artifacts"]) == (failed_id, [], [])
    (figures,) = releaseflow.cli_json("metrics", "main", "Staging", "--json")
    assert (figures["releases"], figures["failed"], figures["changeFailureRate"]) == (2, [failed_id], 0.5)
    assert figures["incidents"][0]["restoredBy"] == resumed_id and figures["leadTimeMedianSeconds"] is None
    assert releaseflow.cli_json("timeline", "main", "Staging", "--json") == []
    metrics = releaseflow.cli("metrics", "main", "Staging", check=True).stdout
    assert "change failure rate   50% (1 of 2 releases: 1 failed, 0 rolled back)" in metrics
    assert "lead time             unknown" in metrics
    timeline = releaseflow.cli("timeline", "main", "Staging", check=True).stdout
    assert timeline.strip() == "nothing has been deployed to Staging yet"
    state = releaseflow.cli("state", "main", check=True).stdout
    assert state.splitlines()[0].split() == ["SERVICE/JOB", "Development", "Staging", "Production"]
    assert "Development → Staging: nothing to compare" in state

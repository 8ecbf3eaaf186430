"""Secret run arguments: stored encrypted, handed to nodes in the clear, shown masked everywhere else."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from tests.integration.support import EngineHarness, job_run, template, workflow

from releaseflow.domain.secret_values import MASK
from releaseflow.engine import queries
from releaseflow.engine.commands import RunRequest
from releaseflow.engine.plan import stored_plan
from releaseflow.engine.secrets import KEY_FILE_NAME, SecretBox, SecretKeyError
from releaseflow.testing import Fail, Succeed
from releaseflow.wire.runs import run_detail as run_detail_document

SECRET = "hunter2-very-secret"
DEFAULT = "declared-default-secret"


def flow() -> dict[str, object]:
    node = job_run(
        "migration",
        spec={
            "jobId": "migrate",
            "runtimeEnvironment": {"API_KEY": "${args.API_KEY}", "DB": "db-${args.DB_PASS}"},
        },
    )
    return template(
        workflow(node), arguments={"DB_PASS": DEFAULT, "REGION": "eu"}, secretArguments=["DB_PASS"]
    )


async def test_secret_arguments__are_encrypted_at_rest_and_masked_on_the_way_out(
    harness: EngineHarness, tmp_path: Path
) -> None:
    await harness.seed(flow())
    run = await harness.start(arguments={"REGION": "us"}, secret_arguments={"API_KEY": SECRET})
    harness.start_worker()
    assert (await harness.run(run.id)).status == "success"

    # The node got the values in the clear.
    [call] = harness.driver.calls
    assert call.params["runtimeEnvironment"] == {"API_KEY": SECRET, "DB": f"db-{DEFAULT}"}
    # Nothing the database keeps of the run holds them.
    async with harness.db.read() as tx:
        rows = [
            *await tx.fetchall("SELECT arguments, secret_arguments FROM runs WHERE id = ?", (run.id,)),
            *await tx.fetchall("SELECT code, data, error, cause FROM node_runs WHERE run_id = ?", (run.id,)),
            *await tx.fetchall("SELECT cause FROM events WHERE run_id = ?", (run.id,)),
        ]
    stored = json.dumps(rows)
    assert SECRET not in stored and DEFAULT not in stored
    assert json.loads(rows[0]["secret_arguments"]) == ["API_KEY", "DB_PASS"]
    # Every reader sees them masked: the read model, the wire shape, the node's resolved code.
    detail = await queries.run_detail(harness.db, run.id)
    assert detail.arguments == {"API_KEY": MASK, "DB_PASS": MASK, "REGION": "us"}
    node = detail.node("migration")
    assert node is not None and node.code["spec"]["runtimeEnvironment"] == {
        "API_KEY": MASK,
        "DB": f"db-{MASK}",
    }
    wire = json.dumps(run_detail_document(detail), ensure_ascii=False)
    assert SECRET not in wire and DEFAULT not in wire and MASK in wire
    # The key was made on first use, readable by its owner only.
    key_file = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_secret_arguments__echoed_by_a_node_stay_hidden_and_reach_the_next(
    harness: EngineHarness,
) -> None:
    harness.driver.script(
        "migrate", Fail(f"refused token {SECRET}"), Succeed({"echo": f"got {SECRET}"}), Succeed()
    )
    first = job_run("first", settings={"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 0.01}})
    second = job_run(
        "second", spec={"jobId": "migrate", "runtimeEnvironment": {"SEEN": "${refs.first.echo}"}}
    )
    await harness.seed(template(workflow(first, second)))
    run = await harness.start(secret_arguments={"API_KEY": SECRET})
    harness.start_worker()
    assert (await harness.run(run.id)).status == "success"

    assert harness.driver.calls[-1].params["runtimeEnvironment"] == {"SEEN": f"got {SECRET}"}
    async with harness.db.read() as tx:
        rows = await tx.fetchall(
            "SELECT code, data, error, attempts, cause FROM node_runs WHERE run_id = ?", (run.id,)
        )
        events = await tx.fetchall("SELECT cause FROM events WHERE run_id = ?", (run.id,))
    assert SECRET not in json.dumps([*rows, *events])
    detail = await queries.run_detail(harness.db, run.id)
    shown = detail.node("first")
    assert shown is not None and shown.data == {"echo": f"got {MASK}"}
    assert any(f"refused token {MASK}" in (event.cause or "") for event in detail.events)


def test_secret_arguments__need_their_key(tmp_path: Path) -> None:
    sealed = SecretBox(tmp_path / "one.key").seal(SECRET)
    other = SecretBox(tmp_path / "other.key")
    other.seal("makes a different key")
    with pytest.raises(SecretKeyError, match="does not open this secret"):
        other.open(sealed)
    with pytest.raises(SecretKeyError, match="no secret key at"):
        SecretBox(tmp_path / "missing.key").open(sealed)
    assert SecretBox(tmp_path / "one.key").open(sealed) == SECRET


async def test_secret_arguments__stay_secret_in_the_plan_and_in_a_resume(harness: EngineHarness) -> None:
    harness.driver.script("migrate", Fail("refused", retryable=False), Succeed())
    await harness.seed(flow())
    run = await harness.start(secret_arguments={"API_KEY": SECRET})
    harness.start_worker()
    assert (await harness.run(run.id)).status == "failed"

    # The plan the run was started with shows the secrets masked, resolved into specs or not.
    plan = await stored_plan(harness.db, run.id)
    assert SECRET not in json.dumps(plan) and DEFAULT not in json.dumps(plan)
    assert plan["arguments"] == {"API_KEY": MASK, "DB_PASS": MASK, "REGION": "eu"}

    resumed = await harness.engine.resume_run(run.id, RunRequest(arguments={"REGION": "us"}))
    assert (await harness.run(resumed.id)).status == "success"
    # The resume ran with the failed run's secrets in the clear, and keeps them sealed and masked.
    assert harness.driver.calls[-1].params["runtimeEnvironment"] == {"API_KEY": SECRET, "DB": f"db-{DEFAULT}"}
    async with harness.db.read() as tx:
        rows = await tx.fetchall(
            "SELECT arguments, secret_arguments, plan FROM runs WHERE id = ?", (resumed.id,)
        )
    assert SECRET not in json.dumps(rows) and DEFAULT not in json.dumps(rows)
    assert json.loads(rows[0]["secret_arguments"]) == ["API_KEY", "DB_PASS"]
    detail = await queries.run_detail(harness.db, resumed.id)
    assert detail.arguments == {"API_KEY": MASK, "DB_PASS": MASK, "REGION": "us"}

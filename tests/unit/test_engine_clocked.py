"""The engine's timing rules on an injected clock: lost attempts, backoff, timeouts, approval expiry."""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from tests.integration.support import deploy, job_run, template, workflow
from tests.unit.engine_clock import LEASE_SECONDS, ClockedEngine, clocked, kill

from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.domain.template import NodeKind
from releaseflow.engine.executors.base import ExecutionContext, Outcome
from releaseflow.engine.outcomes import MAX_LOST_CLAIMS
from releaseflow.store import runs as run_store
from releaseflow.store.database import Transaction
from releaseflow.testing import Fail, Hang, InProgress, Succeed

__all__ = ["clocked"]  # the fixture


async def test_lost_attempt__is_resumed_at_once_under_the_same_key(clocked: ClockedEngine) -> None:
    clocked.driver.script("migrate", Hang(), Succeed({"exitCode": 0}))
    await clocked.seed(template(workflow(job_run("migration"))))
    run = await clocked.start()
    assert await clocked.step(hanging=1) == 1
    await kill(clocked.worker)

    clocked.clock.advance(LEASE_SECONDS + 1)
    assert await clocked.reap() == 1
    lost = (await clocked.nodes(run.id))["migration"]
    assert (lost.status, lost.attempt, lost.due_at) == (NodeStatus.RUNNING, 1, clocked.clock.now())
    assert lost.attempts[-1]["status"] == "lost" and "lost its lease" in lost.attempts[-1]["error"]["message"]

    # No backoff: another worker takes it over at the very moment it was reaped.
    survivor = clocked.new_worker("second")
    assert await clocked.step(survivor) == 1
    assert (await clocked.run(run.id)).status is RunStatus.SUCCESS
    node = (await clocked.nodes(run.id))["migration"]
    key = f"{run.id}/spec.spec.steps[0]/1"
    assert [call.idempotency_key for call in clocked.driver.calls] == [key, key]
    assert [(c.attempt, c.resumed) for c in clocked.contexts()] == [(1, False), (1, True)]
    assert (node.attempt, [entry["status"] for entry in node.attempts]) == (1, ["lost", "success"])
    assert node.attempts[1]["resumed"] is True and node.attempts[1]["worker"] == "second"
    async with clocked.db.read() as tx:
        events = [e for e in await run_store.list_events(tx, run.id) if e.node_path == "spec.spec.steps[0]"]
    assert [(e.from_status, e.to_status) for e in events] == [
        ("pending", "running"),
        ("running", "running"),
        ("running", "running"),
        ("running", "success"),
    ]
    assert "will be resumed at once" in events[1].cause and "resumed by worker second" in events[2].cause


async def test_lost_attempt__does_not_use_up_attempts(clocked: ClockedEngine) -> None:
    clocked.driver.script("migrate", Hang(), Hang(), Hang(), Succeed())
    await clocked.seed(template(workflow(job_run("migration", settings={"maxAttempts": 1}))))
    run = await clocked.start()
    for name in ("a", "b", "c"):
        worker = clocked.new_worker(name)
        assert await clocked.step(worker, hanging=1) == 1
        await kill(worker)
        clocked.clock.advance(LEASE_SECONDS + 1)
        assert await clocked.reap() == 1
    assert await clocked.step(clocked.new_worker("d")) == 1
    assert (await clocked.run(run.id)).status is RunStatus.SUCCESS
    assert (await clocked.nodes(run.id))["migration"].attempt == 1


async def test_lost_attempt__a_node_that_keeps_losing_its_worker_fails(clocked: ClockedEngine) -> None:
    clocked.driver.script("migrate", Hang())
    await clocked.seed(template(workflow(job_run("poison"))))
    run = await clocked.start()
    for index in range(MAX_LOST_CLAIMS):
        worker = clocked.new_worker(f"w{index}")
        assert await clocked.step(worker, hanging=1) == 1
        await kill(worker)
        # A restarted SQLite process takes its leases back at once.
        assert await clocked.reap(restart=True) == 1
    node = (await clocked.nodes(run.id))["poison"]
    assert node.status is NodeStatus.FAILED
    assert node.error is not None
    assert f"lost its worker {MAX_LOST_CLAIMS} times in a row" in node.error["message"]
    assert (await clocked.run(run.id)).status is RunStatus.FAILED
    assert len(clocked.driver.calls) == MAX_LOST_CLAIMS


def approval(ref: str = "gate", amount: int = 1, **extra: object) -> dict[str, object]:
    return {"kind": "Approval", "ref": ref, "spec": {"amount": amount}, **extra}


async def test_approval__without_an_expiry_waits_for_ever(clocked: ClockedEngine) -> None:
    await clocked.seed(template(workflow(approval())))
    run = await clocked.start()
    assert await clocked.step() == 1
    for _ in range(3):
        clocked.clock.advance(24 * 3600)  # far past the default wait timeout, three times over
        assert await clocked.step() == 0
    gate = (await clocked.nodes(run.id))["gate"]
    assert (gate.status, gate.due_at, gate.lease_owner, gate.attempt) == (NodeStatus.WAITING, None, None, 1)
    assert await clocked.run_status(run.id) is RunStatus.RUNNING


async def test_approval__is_decided_in_the_command_without_a_worker(clocked: ClockedEngine) -> None:
    await clocked.seed(template(workflow(approval(), job_run("after"))))
    run = await clocked.start()
    assert await clocked.step() == 1
    clocked.clock.advance(5)
    await clocked.engine.approve(run.id, "gate", "alice", "looks good")
    gate = (await clocked.nodes(run.id))["gate"]
    assert gate.status is NodeStatus.SUCCESS
    assert gate.data["approvals"] == ["alice"]
    assert gate.data["decisions"] == [
        {
            "decision": "approved",
            "by": "alice",
            "at": clocked.clock.now().isoformat(),
            "comment": "looks good",
        }
    ]
    # The next step was made due in the approval's own transaction.
    assert (await clocked.nodes(run.id))["after"].due_at == clocked.clock.now()


async def test_approval__expires_at_its_own_timeout(clocked: ClockedEngine) -> None:
    await clocked.seed(template(workflow(approval(timeoutDuration=60))))
    run = await clocked.start()
    assert await clocked.step() == 1
    clocked.clock.advance(59)
    assert await clocked.step() == 0
    clocked.clock.advance(2)
    assert await clocked.step() == 1
    gate = (await clocked.nodes(run.id))["gate"]
    assert gate.status is NodeStatus.FAILED
    assert gate.error is not None and gate.error["message"].startswith("expired: no decision by")
    assert (await clocked.run(run.id)).status is RunStatus.FAILED


async def test_chain__the_answering_worker_begins_the_next_step_itself(clocked: ClockedEngine) -> None:
    await clocked.seed(template(workflow(job_run("one"), job_run("two"), job_run("three"))))
    run = await clocked.start()
    seen: list[dict[str, NodeStatus]] = []
    platform = clocked.executors["JobRun"]
    start = platform.inner.start

    async def start_and_look(context: ExecutionContext) -> Outcome:
        # What another reader sees when the step starts: the step before it is already committed.
        async with clocked.db.read() as tx:
            nodes = await run_store.load_nodes(tx, run.id)
        seen.append({node.ref: node.status for node in nodes if node.ref})
        return await start(context)

    platform.inner.start = start_and_look  # type: ignore[method-assign]
    # One claim: the rest of the chain runs without another round through the claim loop.
    assert await clocked.step() == 1
    assert (await clocked.run(run.id)).status is RunStatus.SUCCESS
    assert seen == [
        {"one": NodeStatus.RUNNING, "two": NodeStatus.PENDING, "three": NodeStatus.PENDING},
        {"one": NodeStatus.SUCCESS, "two": NodeStatus.RUNNING, "three": NodeStatus.PENDING},
        {"one": NodeStatus.SUCCESS, "two": NodeStatus.SUCCESS, "three": NodeStatus.RUNNING},
    ]
    assert [context.node_path for context in clocked.contexts()] == [
        f"spec.spec.steps[{index}]" for index in range(3)
    ]


async def test_queue__runs_that_end_at_once_are_admitted_in_a_loop(clocked: ClockedEngine) -> None:
    gate = approval(skipNodeExecution="${args.skip}")
    await clocked.seed(
        template(workflow(gate), arguments={"skip": "false"}, options={"concurrencyPolicy": "queue"})
    )
    first = await clocked.start()
    queued = [await clocked.start(arguments={"skip": "true"}) for _ in range(120)]
    assert await clocked.step() == 1
    # Each queued run ends as soon as it is admitted (its only step is skipped), which admits the
    # next: all of them in the approval's transaction, at a stack depth that does not grow with them.
    depth = len(inspect.stack())
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 120)
    try:
        await clocked.engine.approve(first.id, "gate", "alice")
    finally:
        sys.setrecursionlimit(limit)
    statuses = {(await clocked.run(run.id)).status for run in [first, *queued]}
    assert statuses == {RunStatus.SUCCESS}


async def test_backoff__the_next_attempt_waits_out_the_node_backoff(clocked: ClockedEngine) -> None:
    clocked.driver.script("migrate", Fail("flaky"), Succeed())
    retried = job_run("migration", settings={"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 30}})
    await clocked.seed(template(workflow(retried)))
    run = await clocked.start()
    assert await clocked.step() == 1
    node = (await clocked.nodes(run.id))["migration"]
    assert (node.status, node.max_attempts, node.backoff_seconds) == (NodeStatus.RETRYING, 2, 30.0)
    assert node.next_attempt_at == clocked.clock.now() + timedelta(seconds=30)
    clocked.clock.advance(29.9)
    assert await clocked.step() == 0
    clocked.clock.advance(0.1)
    assert await clocked.step() == 1
    assert (await clocked.run(run.id)).status is RunStatus.SUCCESS


async def test_attempts__the_log_says_why_no_retry_was_made(clocked: ClockedEngine) -> None:
    clocked.driver.script("migrate", Fail("spec invalid: no command", retryable=False))
    clocked.driver.script("api", Fail("health check timed out"))
    once = {"maxAttempts": 1}
    await clocked.seed(
        template(workflow(job_run("migration"), deploy("release", settings=once), kind="parallel"))
    )
    run = await clocked.start()
    assert await clocked.step() == 2
    nodes = await clocked.nodes(run.id)
    assert nodes["migration"].attempts[-1]["noRetry"] == "not retryable: spec invalid: no command"
    assert nodes["release"].attempts[-1]["noRetry"] == "attempts used up (1 of 1)"
    assert (await clocked.run(run.id)).status is RunStatus.FAILED


async def test_wait__ends_at_the_node_timeout(clocked: ClockedEngine) -> None:
    clocked.driver.script("api", InProgress(polls=1000))
    waits = deploy("release", condition="running", timeoutDuration=60, settings={"maxAttempts": 1})
    await clocked.seed(template(workflow(waits)))
    run = await clocked.start()
    assert await clocked.step() == 1
    waiting = (await clocked.nodes(run.id))["release"]
    assert waiting.status is NodeStatus.WAITING and waiting.timeout_seconds == 60.0
    assert waiting.wait_deadline == clocked.clock.now() + timedelta(seconds=60)
    clocked.clock.advance(59)
    assert await clocked.step() == 1  # a poll: still in progress, still within its time
    assert (await clocked.nodes(run.id))["release"].status is NodeStatus.WAITING
    clocked.clock.advance(1)
    assert await clocked.step() == 1
    node = (await clocked.nodes(run.id))["release"]
    assert node.status is NodeStatus.FAILED
    assert node.error is not None and node.error["message"].startswith("timed out")
    assert node.attempts[-1]["noRetry"] == "attempts used up (1 of 1)"


async def test_answer__that_cannot_be_recorded_fails_the_node_once(clocked: ClockedEngine) -> None:
    # Data that holds itself is no JSON: recording it fails for a reason no retry or worker can change.
    looped: dict[str, object] = {"exitCode": 0}
    looped["self"] = looped
    clocked.driver.script("migrate", Succeed(looped))
    await clocked.seed(template(workflow(job_run("migration"))))
    run = await clocked.start()

    assert await clocked.step() == 1

    node = (await clocked.nodes(run.id))["migration"]
    assert node.status is NodeStatus.FAILED
    assert node.error is not None
    message = node.error["message"]
    assert "its answer could not be recorded: ValueError: Circular reference detected" in message
    assert "\\n" not in message and "ValueError(" not in message  # read as text, not as a repr
    assert [entry["status"] for entry in node.attempts] == ["failed"]
    assert (await clocked.run(run.id)).status is RunStatus.FAILED
    assert len(clocked.driver.calls) == 1
    assert await clocked.reap(restart=True) == 0  # nothing left leased to be reclaimed


class Crashing:
    """An executor with a bug: it raises what no executor should."""

    async def start(self, context: ExecutionContext) -> Outcome:
        raise RuntimeError("the first line\nand 'the second'")

    poll = start

    async def cancel(self, context: ExecutionContext) -> str:
        return ""


async def test_executor_crash__is_told_as_text_not_as_a_repr(clocked: ClockedEngine) -> None:
    clocked.executors[NodeKind.JOB_RUN].inner = Crashing()
    await clocked.seed(template(workflow(job_run("migration", settings={"maxAttempts": 1}))))
    run = await clocked.start()

    await clocked.step()

    node = (await clocked.nodes(run.id))["migration"]
    assert node.status is NodeStatus.FAILED and node.error is not None
    assert node.error["message"] == (
        "the JobRun executor crashed: RuntimeError: the first line\nand 'the second'"
    )


class _Deadlock(Exception):
    """What PostgreSQL raises when it picks a transaction as a deadlock's victim (rolled back whole)."""


async def test_abort__ended_by_a_conflict_with_a_worker__is_run_again_once_and_takes_effect(
    clocked: ClockedEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    clocked.driver.script("migrate", Hang())
    await clocked.seed(template(workflow(job_run("migration"))))
    run = await clocked.start()
    assert await clocked.step(hanging=1) == 1
    transaction = clocked.db.transaction
    victims = [True]  # the first transaction loses the conflict, after it changed things

    @contextlib.asynccontextmanager
    async def losing_once() -> AsyncIterator[Transaction]:
        async with transaction() as tx:
            yield tx
            if victims and victims.pop():
                raise _Deadlock("deadlock detected")  # ...and so nothing of it is committed

    monkeypatch.setattr(clocked.db, "transaction", losing_once)
    monkeypatch.setattr(clocked.db, "is_conflict", lambda error: isinstance(error, _Deadlock))
    await clocked.engine.abort_run(run.id)
    monkeypatch.undo()

    assert victims == []
    assert (await clocked.run(run.id)).status in (RunStatus.ABORTING, RunStatus.ABORTED)
    async with clocked.db.read() as tx:
        aborts = [e for e in await run_store.list_events(tx, run.id) if "aborted by request" in e.cause]
    assert len(aborts) == 1  # the rolled-back attempt left no trace; the second one took effect


async def test_abort__an_error_that_is_not_a_conflict_is_not_run_again(
    clocked: ClockedEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await clocked.seed(template(workflow(job_run("migration"))))
    run = await clocked.start()
    calls = []
    transaction = clocked.db.transaction

    @contextlib.asynccontextmanager
    async def failing() -> AsyncIterator[Transaction]:
        calls.append(1)
        async with transaction() as tx:
            yield tx
            raise _Deadlock("not a conflict the database says it settled")

    monkeypatch.setattr(clocked.db, "transaction", failing)
    with pytest.raises(_Deadlock):
        await clocked.engine.abort_run(run.id)
    assert calls == [1]

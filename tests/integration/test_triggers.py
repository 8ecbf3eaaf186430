"""Triggers through the engine, on SQLite and PostgreSQL (fake driver): git events, webhooks, pauses,
pins, concurrency, and the refs a run reads of its triggers."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.integration.support import PIPELINE, PROJECT, EngineHarness, template, workflow

from releaseflow.domain.errors import NotFoundError
from releaseflow.domain.git_rules import EventKind, GitEvent
from releaseflow.domain.statuses import RunStatus
from releaseflow.engine.git_watch import poll_once
from releaseflow.engine.pins import pin_stage
from releaseflow.engine.triggers import Decision, Triggers
from releaseflow.store import catalog
from releaseflow.store import history as history_store
from releaseflow.testing import Hang

STAGE = "Development"
REPO = "https://github.com/acme/shop"
SHA = "0123456789abcdef0123456789abcdef01234567"


def flow(*, paused: bool = False, policy: str = "allow", build: str = "${refs.git.branch}") -> dict[str, Any]:
    """Deploys ``build`` (by default the trigger's branch) to api; a git trigger on main."""
    release = {
        "kind": "Release",
        "ref": "api",
        "spec": {
            "type": "build",
            "origin": {"id": "builder", "branch": "${refs.git.branch}", "build": build},
            "target": {"id": "api", "type": "service"},
        },
        "settings": {"maxAttempts": 1},
    }
    trigger = {"ref": "git", "vcsService": "github", "repoUrl": REPO, "branchRestrictions": ["main"]}
    return template(
        workflow(release), triggers=[trigger], options={"paused": paused, "concurrencyPolicy": policy}
    )


def push(branch: str = "main", message: str = "Change") -> GitEvent:
    return GitEvent(EventKind.PUSH, REPO + ".git", branch, SHA, head_message=message, paths=("app.py",))


async def webhook(harness: EngineHarness) -> tuple[Triggers, str]:
    triggers = Triggers(harness.engine)
    return triggers, await triggers.rotate_webhook(PROJECT, PIPELINE, STAGE)


async def deployed_origin(harness: EngineHarness, run_id: str) -> dict[str, Any]:
    """What the Release node asked the driver to deploy, resolved."""
    finished = await harness.run(run_id)
    assert finished.status is RunStatus.SUCCESS, finished.error
    [call] = [call for call in harness.driver.calls_on("api") if call.run_id == run_id]
    return dict(call.params)


async def test_git_event__matching_push_starts_a_run_that_reads_the_commit(harness: EngineHarness) -> None:
    await harness.seed(flow(build="${refs.git.sha}"))
    harness.start_worker()
    triggers = Triggers(harness.engine)
    [outcome] = await triggers.on_git_event(push(), "github")
    assert outcome.decision is Decision.STARTED and outcome.run_id is not None
    origin = await deployed_origin(harness, outcome.run_id)
    assert (origin["branch"], origin["build"]) == ("main", SHA)
    run = await harness.run(outcome.run_id)
    assert (run.origin_kind, run.origin_by) == ("git", "main@0123456")
    assert run.trigger_refs == {"git": {"branch": "main", "sha": SHA, "repoUrl": REPO}}
    [entry] = await triggers.log(PROJECT, PIPELINE, STAGE)
    assert (entry.source, entry.decision, entry.run_id) == ("github", "started", outcome.run_id)
    assert entry.request == f"push to main at 0123456 ({REPO}.git)"


async def test_git_event__not_matching_is_logged_as_skipped_with_the_rule(harness: EngineHarness) -> None:
    await harness.seed(flow())
    triggers = Triggers(harness.engine)
    [outcome] = await triggers.on_git_event(push("devel"), "github")
    assert (outcome.decision, outcome.reason) == (
        Decision.SKIPPED,
        "branch devel matches no branch rule (main)",
    )
    [skipped] = await triggers.on_git_event(push(message="Docs [skip ci]"), "github")
    assert skipped.reason == "the head commit's message says [skip ci]"
    other = GitEvent(EventKind.PUSH, "https://github.com/acme/other", "main", SHA)
    assert await triggers.on_git_event(other, "github") == []
    assert [entry.decision for entry in await triggers.log(PROJECT, PIPELINE, STAGE)] == [
        "skipped",
        "skipped",
    ]
    async with harness.db.transaction() as tx:
        stage_flow = await catalog.get_flow(tx, PROJECT, PIPELINE, STAGE)
        assert stage_flow is not None
        assert await history_store.latest_run(tx, stage_flow.id) is None


async def test_paused_flow__triggers_start_nothing_and_a_run_by_hand_says_so(harness: EngineHarness) -> None:
    await harness.seed(flow(paused=True))
    harness.start_worker()
    triggers, token = await webhook(harness)
    [by_git] = await triggers.on_git_event(push(), "github")
    by_hook = await triggers.fire_webhook(token, [], "127.0.0.1")
    for outcome in (by_git, by_hook):
        assert outcome.decision is Decision.SKIPPED and outcome.run_id is None
        assert "the release flow is paused (options.paused)" in outcome.reason
    run = await harness.start(STAGE)
    assert (await harness.run(run.id)).status is RunStatus.SUCCESS
    causes = [event.cause for event in await _events(harness, run.id)]
    assert "the release flow is paused: its triggers start no run; this one was started by hand" in causes


async def _events(harness: EngineHarness, run_id: str) -> list[Any]:
    from releaseflow.store import runs as run_store

    async with harness.db.read() as tx:
        return await run_store.list_events(tx, run_id)


async def test_pinned_stage__webhook_is_skipped_and_kept_with_the_pin(harness: EngineHarness) -> None:
    await harness.seed(flow())
    await pin_stage(harness.db, harness.engine.clock, PROJECT, PIPELINE, STAGE, by="alice", reason="hold")
    triggers, token = await webhook(harness)
    outcome = await triggers.fire_webhook(token, [("name", "from ci")], "10.0.0.9")
    assert outcome.decision is Decision.SKIPPED
    assert "webhook 10.0.0.9 did not start a run: the stage is pinned by alice" in outcome.reason
    [entry] = await triggers.log(PROJECT, PIPELINE, STAGE)
    assert (entry.decision, entry.request) == ("skipped", "webhook name=from ci")


async def test_forbid_policy__a_trigger_while_a_run_is_active_is_refused(harness: EngineHarness) -> None:
    await harness.seed(flow(policy="forbid"))
    harness.driver.script("api", Hang())
    harness.start_worker()
    triggers, token = await webhook(harness)
    first = await triggers.fire_webhook(token, [], "ci")
    second = await triggers.fire_webhook(token, [], "ci")
    assert first.decision is Decision.STARTED
    assert second.decision is Decision.REFUSED and "forbid" in second.reason
    assert first.run_id is not None
    await harness.engine.abort_run(first.run_id)
    await harness.run(first.run_id)


async def test_webhook__parameters_name_the_run_override_the_branch_and_become_arguments(
    harness: EngineHarness,
) -> None:
    await harness.seed(flow(build="${args.image_tag}"))
    harness.start_worker()
    triggers, token = await webhook(harness)
    parameters = [
        ("name", "nightly 7"),
        ("description", "from CI"),
        ("git.branch", "hotfix"),
        ("image_tag", "v7"),
    ]
    outcome = await triggers.fire_webhook(token, parameters, "ci")
    assert outcome.run_id is not None
    origin = await deployed_origin(harness, outcome.run_id)
    assert (origin["branch"], origin["build"]) == ("hotfix", "v7")
    run = await harness.run(outcome.run_id)
    assert (run.name, run.description, run.origin_kind) == ("nightly 7", "from CI", "webhook")


async def test_webhook__bad_parameters_are_refused_as_invalid(harness: EngineHarness) -> None:
    await harness.seed(flow())
    triggers, token = await webhook(harness)
    outcome = await triggers.fire_webhook(token, [("git.colour", "red")], "ci")
    assert outcome.decision is Decision.REFUSED and outcome.invalid
    assert "git.colour: trigger 'git' has no field 'colour'" in outcome.reason
    bad_name = await triggers.fire_webhook(token, [("name", "!")], "ci")
    assert bad_name.invalid and "is not a valid run name" in bad_name.reason


async def test_webhook__rotating_retires_the_old_url(harness: EngineHarness) -> None:
    await harness.seed(flow())
    triggers, old = await webhook(harness)
    new = await triggers.rotate_webhook(PROJECT, PIPELINE, STAGE)
    assert new != old and await triggers.webhook_token(PROJECT, PIPELINE, STAGE) == new
    with pytest.raises(NotFoundError, match="no release flow has this webhook URL"):
        await triggers.fire_webhook(old, [], "ci")


async def test_run_by_hand__reads_the_triggers_branch_and_overrides(harness: EngineHarness) -> None:
    await harness.seed(flow(build="${refs.git.sha}"))
    harness.start_worker()
    # No run by hand knows a sha unless it is given: the dry run says so before anything starts.
    failed = await harness.run((await harness.start(STAGE)).id)
    assert failed.status is RunStatus.FAILED and "dry run failed" in (failed.error or "")
    assert "refs.git.sha" in (failed.error or "")
    run = await harness.start(STAGE, overrides={"git": {"sha": SHA}})
    origin = await deployed_origin(harness, run.id)
    assert (origin["branch"], origin["build"]) == ("main", SHA)


async def test_deliveries__a_replayed_delivery_id_is_refused(harness: EngineHarness) -> None:
    triggers = Triggers(harness.engine)
    assert await triggers.accept_delivery("github", "d-1")
    assert not await triggers.accept_delivery("github", "d-1")
    assert await triggers.accept_delivery("gitlab", "d-1")


def git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=Tests", "-c", "user.email=tests@example.com", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=30).stdout.strip()


async def test_git_watch__a_commit_on_a_watched_branch_is_decided_once(
    harness: EngineHarness, tmp_path: Path
) -> None:
    repo = tmp_path / "app"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("v1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "First")
    document = flow(build="${refs.git.sha}")
    document["triggers"][0]["repoUrl"] = f"file://{repo}"
    document["triggers"][0]["pathIgnoreRules"] = ["docs/"]
    await harness.seed(document)
    harness.start_worker()
    triggers = Triggers(harness.engine)
    assert await poll_once(triggers) == []  # the first look only notes the heads

    (repo / "app.py").write_text("v2\n")
    git(repo, "commit", "-q", "-am", "Second")
    sha = git(repo, "rev-parse", "HEAD")
    [started] = await poll_once(triggers)
    assert await poll_once(triggers) == []  # seen: not decided again
    assert started.decision is Decision.STARTED and started.run_id is not None
    assert (await deployed_origin(harness, started.run_id))["build"] == sha

    (repo / "docs").mkdir()
    (repo / "docs" / "guide.md").write_text("read me\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "Docs only")
    git(repo, "branch", "feature")
    outcomes = await poll_once(triggers)
    assert sorted(outcome.reason for outcome in outcomes) == [
        "branch feature matches no branch rule (main)",
        "every changed file is ignored by the path rules (1 changed)",
    ]


@pytest.mark.parametrize("transient", [True, False], ids=["database away", "a bug"])
async def test_git_watch__a_database_outage_is_a_warning_and_a_bug_a_traceback(
    harness: EngineHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, transient: bool
) -> None:
    import asyncio
    import sqlite3

    import psycopg

    from releaseflow.engine import git_watch

    away = (
        sqlite3.OperationalError("database is locked")
        if harness.engine.db.dialect == "sqlite"
        else psycopg.OperationalError("connection refused")
    )
    error = away if transient else KeyError("bug")
    assert harness.engine.db.is_transient(error) is transient
    stop = asyncio.Event()

    async def failing_round(triggers: Triggers) -> list[Any]:
        stop.set()
        raise error

    monkeypatch.setattr(git_watch, "poll_once", failing_round)
    with caplog.at_level("WARNING", logger=git_watch.log.name):
        await git_watch.watch(Triggers(harness.engine), 0.01, stop)
    (record,) = [r for r in caplog.records if r.name == git_watch.log.name]
    assert (record.levelname, record.exc_info is None) == (
        ("WARNING", True) if transient else ("ERROR", False)
    )

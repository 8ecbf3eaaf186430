"""Watching local git repositories: a commit on a watched branch becomes a push event.

A git trigger whose ``repoUrl`` is a path on this host (``/srv/git/app`` or ``file:///srv/git/app``) is
watched by polling, in the server process, every ``RELEASEFLOW_GIT_POLL_SECONDS``: no outside service
is needed to react to a commit. The heads seen last are kept in the database, so a restarted server
reacts to the commits made while it was down, once; of several servers watching one database, one
decides each move. The first look at a repository only notes its heads: branches that existed before
anyone watched them start nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from releaseflow.domain.git_rules import EventKind, GitEvent
from releaseflow.engine.triggers import Outcome, Triggers
from releaseflow.store import triggers as trigger_store
from releaseflow.store.database import describe

log = logging.getLogger(__name__)

GIT_TIMEOUT_SECONDS = 30.0


class GitError(Exception):
    """A git command failed on a watched repository."""


async def _git(repository: str, *args: str) -> str:
    path = repository.removeprefix("file://")
    process = await asyncio.create_subprocess_exec(
        "git",
        "-C",
        path,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), GIT_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise GitError(f"git {' '.join(args)} in {path} took longer than {GIT_TIMEOUT_SECONDS:g}s") from None
    if process.returncode != 0:
        raise GitError(f"git {' '.join(args)} in {path} failed: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


async def branch_heads(repository: str) -> dict[str, str]:
    out = await _git(repository, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


async def push_event(repository: str, branch: str, old: str | None, new: str) -> GitEvent:
    """The push that moved ``branch`` from ``old`` (None: a new branch) to ``new``."""
    message = await _git(repository, "log", "-1", "--format=%B", new)
    paths: tuple[str, ...] | None = None
    if old is not None:
        changed = await _git(repository, "diff", "--name-only", old, new)
        paths = tuple(line for line in changed.splitlines() if line)
    return GitEvent(EventKind.PUSH, repository, branch, new, head_message=message.strip(), paths=paths)


async def poll_once(triggers: Triggers) -> list[Outcome]:
    """Look at every watched repository once; decide a push event for every branch that moved."""
    outcomes: list[Outcome] = []
    db = triggers.engine.db
    for repository in sorted(await triggers.local_repositories()):
        try:
            heads = await branch_heads(repository)
        except GitError as error:
            log.warning("cannot watch %s: %s", repository, error)
            continue
        async with db.transaction() as tx:
            known = await trigger_store.git_heads(tx, repository)
        first_look = not known
        for branch, sha in sorted(heads.items()):
            old = known.get(branch)
            if old == sha:
                continue
            # Claimed before it is decided: of several servers watching, one decides each move.
            async with db.transaction() as tx:
                claimed = await trigger_store.move_git_head(
                    tx, repository, branch, old, sha, triggers.engine.clock.now()
                )
            if claimed and not first_look:
                event = await push_event(repository, branch, old, sha)
                outcomes.extend(await triggers.on_git_event(event, "git poll"))
    return outcomes


async def watch(triggers: Triggers, interval: float, stop: asyncio.Event) -> None:
    """Poll until ``stop`` is set; a failing round is logged and the next one tried."""
    while not stop.is_set():
        try:
            await poll_once(triggers)
        except Exception as error:  # a bad round must not end the watching; it says why in the log
            if triggers.engine.db.is_transient(error):
                # The database is away (a restart, a cut connection): expected, and /healthz says so.
                log.warning(
                    "watching local git repositories paused: %s; trying again in %ss",
                    describe(error),
                    interval,
                )
            else:
                log.exception("watching local git repositories failed; trying again in %ss", interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)

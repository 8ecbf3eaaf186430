"""Git for local builds: one bare mirror per build service, fetched into, and checkouts made from it.

A branch head is resolved once, when a build starts, to the commit that is then built and recorded;
git never waits on a password prompt and speaks English (``LC_ALL=C``), so its errors can be shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import datetime
from pathlib import Path

from releaseflow.platform.local.artifacts import BuildError
from releaseflow.platform.local.specs import BuildServiceSpec

GIT_TIMEOUT_SECONDS = 300.0
BRANCHES_LISTED = 10


async def _git(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}  # never wait on a password prompt
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=GIT_TIMEOUT_SECONDS)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return process.returncode or 0, out.decode(errors="replace").strip(), err.decode(errors="replace").strip()


def _is_remote(repository: str) -> bool:
    if "://" in repository:
        return True
    # scp-like syntax, user@host:path; a local path with a colon would need a slash before it.
    head = repository.split(":", 1)[0]
    return ":" in repository and "/" not in head and not repository.startswith((".", "~"))


async def resolve(
    name: str, spec: BuildServiceSpec, mirror: Path, branch: str | None, sha: str | None
) -> tuple[str, str | None]:
    """Fetch the repository into the mirror; the commit to build, and the branch to record."""
    repository = spec.repository
    where = f"build service '{name}'"
    if not _is_remote(repository):
        local = await asyncio.to_thread(_existing_path, repository)
        if local is None:
            raise BuildError(
                f"{where}: repository '{repository}' does not exist on this host; check spec.repository"
                " (a git URL, or the path of a local git repository)",
                retryable=False,
            )
        repository = local
    if not (mirror / "HEAD").exists():
        code, _, err = await _git("init", "--quiet", "--bare", str(mirror))
        if code != 0:
            raise BuildError(f"{where}: cannot create the git mirror {mirror}: {err}")
    code, _, err = await _git(
        "--git-dir", str(mirror), "fetch", "--quiet", "--prune", "--no-tags", "--force", repository,
        "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
    )  # fmt: skip
    if code != 0:
        # A missing or wrong repository will not appear by retrying; a network failure may go away.
        permanent = not _is_remote(repository) or "not found" in err.lower() or "does not appear" in err
        raise BuildError(
            f"{where}: cannot fetch repository '{spec.repository}' (is it a git repository you can read?"
            f" check spec.repository); git said: {err}",
            retryable=not permanent,
        )
    branches = await _branches(mirror)
    if sha is not None:
        code, commit, _ = await _git(
            "--git-dir", str(mirror), "rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}"
        )
        if code != 0:
            raise BuildError(
                f"{where}: commit '{sha}' does not exist in repository '{spec.repository}'"
                f" (branches: {_listing(branches)}); check the Build node's sha",
                retryable=False,
            )
        recorded = branch or spec.branch
        if branch is None and recorded is not None:
            # A default branch is recorded only if the commit is on it; otherwise latest_build of
            # that branch would return a commit that never was on it.
            code, _, _ = await _git(
                "--git-dir", str(mirror), "merge-base", "--is-ancestor", commit, f"refs/heads/{recorded}"
            )
            recorded = recorded if code == 0 else None
        return commit, recorded
    wanted = branch or spec.branch or await _default_branch(repository)
    if wanted is None or wanted not in branches:
        what = f"branch '{wanted}'" if wanted else "a default branch"
        raise BuildError(
            f"{where}: {what} does not exist in repository '{spec.repository}'"
            f" (branches: {_listing(branches)}); check the Build node's branch or spec.branch",
            retryable=False,
        )
    code, commit, err = await _git(
        "--git-dir", str(mirror), "rev-parse", "--verify", f"refs/heads/{wanted}^{{commit}}"
    )
    if code != 0:
        raise BuildError(f"{where}: cannot resolve branch '{wanted}': {err}")
    return commit, wanted


def _existing_path(repository: str) -> str | None:
    path = Path(repository).expanduser().absolute()
    return str(path) if path.exists() else None


async def _branches(mirror: Path) -> list[str]:
    # Newest first, so the list in an error shows the branches people are working on.
    _, out, _ = await _git(
        "--git-dir",
        str(mirror),
        "for-each-ref",
        "--sort=-committerdate",
        "--format=%(refname:lstrip=2)",
        "refs/heads",
    )
    return [line for line in out.splitlines() if line]


def _listing(branches: list[str]) -> str:
    if not branches:
        return "none: the repository has no branches"
    shown = ", ".join(branches[:BRANCHES_LISTED])
    more = len(branches) - BRANCHES_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


async def _default_branch(repository: str) -> str | None:
    code, out, _ = await _git("ls-remote", "--symref", repository, "HEAD")
    for line in out.splitlines() if code == 0 else []:
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            return line[len("ref: refs/heads/") : -len("\tHEAD")]
    return None


async def commit_time(mirror: Path, commit: str) -> datetime | None:
    """When ``commit`` was committed (its committer date), for the lead time from commit to release;
    None when git cannot say."""
    code, out, _ = await _git("--git-dir", str(mirror), "show", "-s", "--format=%cI", commit)
    try:
        return datetime.fromisoformat(out) if code == 0 and out else None
    except ValueError:
        return None


async def checkout(mirror: Path, commit: str, source: Path) -> None:
    # A clone sharing the mirror's objects is quick and leaves the mirror untouched (a worktree would
    # write into it); the build command gets a real repository, so `git describe` and the like work.
    code, _, err = await _git("clone", "--quiet", "--shared", "--no-checkout", str(mirror), str(source))
    if code == 0:
        code, _, err = await _git(
            "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit, cwd=source
        )
    if code != 0:
        raise BuildError(f"cannot check out commit {commit}: {err}")

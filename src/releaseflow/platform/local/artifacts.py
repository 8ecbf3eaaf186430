"""The on-disk store of local builds: one folder per build, its manifest, its log and its artifact.

Layout under ``<root>/builds``::

    <build id>/manifest.json   the build's record (atomically replaced while it runs, read-only after)
    <build id>/build.log       stdout and stderr of the build command
    <build id>/source/         the checkout the command runs in (removed when the build ends)
    <build id>/artifact/       what the build keeps, read-only once the build succeeded
    keys/<sha256 of key>       the build an idempotency key started (created once, never replaced)

Every reader goes to disk rather than to a cache: several worker processes of one host may share the
root, and any of them may be asked to follow a build another one started.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from releaseflow.platform.driver import DriverError
from releaseflow.platform.local.state_files import read_json, write_json


class BuildError(DriverError):
    """A build cannot start, or a lookup of one failed; the message says what to check."""


class BuildStatus(StrEnum):
    RUNNING = "running"  # set by start_build: the checkout or the build command is under way
    SUCCESS = "success"  # set by the build task: the command exited 0 and the artifact is kept, read-only
    FAILED = "failed"  # set by the build task, or on start/lookup when the process that ran it died


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class BuildRecord:
    """The manifest of one build; ``recipe`` fingerprints what was built, so reuse is only exact."""

    id: str
    build_service: str
    repository: str
    branch: str | None
    commit: str
    status: BuildStatus
    started_at: datetime
    recipe: str
    log_path: str
    artifact_path: str
    owner_pid: int
    owner_start_time: int | None  # of the owner process, so a recycled pid is not taken for it
    # The build command's process group, so a build orphaned by a dead releaseflow can be stopped.
    command_pid: int | None = None
    command_start_time: int | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    error: str | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    committed_at: datetime | None = None  # the commit's committer date (lead time from commit to release)

    @property
    def duration_seconds(self) -> float | None:
        if self.ended_at is None:
            return None
        return round((self.ended_at - self.started_at).total_seconds(), 3)

    @property
    def finished(self) -> bool:
        return self.status is not BuildStatus.RUNNING

    def finish(
        self,
        status: BuildStatus,
        *,
        error: str | None = None,
        exit_code: int | None = None,
        timings: Mapping[str, float] | None = None,
    ) -> BuildRecord:
        return replace(
            self,
            status=status,
            ended_at=now_utc(),
            error=error,
            exit_code=exit_code,
            timings=dict(timings if timings is not None else self.timings),
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["started_at"] = self.started_at.isoformat()
        data["ended_at"] = self.ended_at.isoformat() if self.ended_at else None
        data["committed_at"] = self.committed_at.isoformat() if self.committed_at else None
        data["duration_seconds"] = self.duration_seconds
        data["timings"] = dict(self.timings)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BuildRecord:
        ended, committed = data.get("ended_at"), data.get("committed_at")
        return cls(
            id=str(data["id"]),
            build_service=str(data["build_service"]),
            repository=str(data["repository"]),
            branch=data.get("branch"),
            commit=str(data["commit"]),
            status=BuildStatus(data["status"]),
            started_at=datetime.fromisoformat(str(data["started_at"])),
            recipe=str(data["recipe"]),
            log_path=str(data["log_path"]),
            artifact_path=str(data["artifact_path"]),
            owner_pid=int(data["owner_pid"]),
            owner_start_time=data.get("owner_start_time"),
            command_pid=data.get("command_pid"),
            command_start_time=data.get("command_start_time"),
            ended_at=datetime.fromisoformat(str(ended)) if ended else None,
            exit_code=data.get("exit_code"),
            error=data.get("error"),
            timings=dict(data.get("timings") or {}),
            committed_at=datetime.fromisoformat(str(committed)) if committed else None,
        )


class ArtifactStore:
    """Build folders under ``<root>/builds``; knows files, not git nor processes."""

    def __init__(self, root: Path) -> None:
        self.root = root / "builds"
        self._keys = self.root / "keys"

    def folder(self, build_id: str) -> Path:
        return self.root / build_id

    def manifest_path(self, build_id: str) -> Path:
        return self.folder(build_id) / "manifest.json"

    def source_path(self, build_id: str) -> Path:
        return self.folder(build_id) / "source"

    def create(self, record: BuildRecord) -> None:
        self.folder(record.id).mkdir(parents=True, exist_ok=False)
        self.save(record)

    def save(self, record: BuildRecord) -> None:
        path = self.manifest_path(record.id)
        write_json(path, record.to_json())
        if record.finished:
            # A finished manifest is part of the immutable result.
            path.chmod(0o444)

    def load(self, build_id: str) -> BuildRecord | None:
        if not _is_build_id(build_id):
            return None
        data = read_json(self.manifest_path(build_id))
        return BuildRecord.from_json(data) if data is not None else None

    def records(self) -> Iterator[BuildRecord]:
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if _is_build_id(entry.name):
                record = self.load(entry.name)
                if record is not None:
                    yield record

    def discard(self, build_id: str) -> None:
        """Remove a build folder that never became a build (it lost an idempotency race)."""
        folder = self.folder(build_id)
        make_writable(folder)
        shutil.rmtree(folder, ignore_errors=True)

    def build_for_key(self, key: str) -> str | None:
        path = self._key_path(key)
        try:
            return path.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def claim_key(self, key: str, build_id: str) -> str:
        """Bind ``key`` to ``build_id`` unless it is bound already; returns the build the key names.

        ``os.link`` of a complete temporary file is atomic and fails if the name exists, so two
        processes racing on one key agree on one build and no reader sees an empty key file.
        """
        path = self._key_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".key.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(build_id)
            try:
                os.link(temp, path)
            except FileExistsError:
                existing = self.build_for_key(key)
                if existing is None:
                    raise
                return existing
            return build_id
        finally:
            os.unlink(temp)

    def _key_path(self, key: str) -> Path:
        return self._keys / hashlib.sha256(key.encode("utf-8")).hexdigest()


def _is_build_id(name: str) -> bool:
    return name.startswith("bld-") and name[4:].isalnum()


def make_read_only(path: Path) -> None:
    """Take write permission off ``path`` and everything under it (directories last, bottom up)."""
    if path.is_symlink() or not path.exists():
        return
    if path.is_dir():
        for folder, dirs, files in os.walk(path, topdown=False):
            for name in files:
                _drop_write(Path(folder) / name)
            for name in dirs:
                _drop_write(Path(folder) / name)
    _drop_write(path)


def make_writable(path: Path) -> None:
    """Give write permission back to the owner, so a read-only tree can be removed."""
    if not path.exists() or path.is_symlink():
        return
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
    if path.is_dir():
        for folder, dirs, files in os.walk(path):
            for name in dirs + files:
                item = Path(folder) / name
                if not item.is_symlink():
                    item.chmod(item.stat().st_mode | stat.S_IWUSR)


def _drop_write(path: Path) -> None:
    if path.is_symlink():
        return
    mode = path.stat().st_mode
    path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def keep_artifact(source: Path, artifact_path: str | None, artifact: Path) -> str | None:
    """Move what a build keeps to ``artifact``, read-only; the problem's message, or None."""
    kept = source / artifact_path if artifact_path else source
    if not kept.is_dir():
        return (
            f"the build command succeeded but spec.artifactPath '{artifact_path}' is not a folder"
            " of the checkout after it ran; check the build service's artifactPath"
        )
    kept.rename(artifact)
    if artifact_path is None:
        remove_tree(artifact / ".git")  # the artifact is the content, not a repository
    make_read_only(artifact)
    return None


def remove_tree(path: Path) -> None:
    if path.exists():
        make_writable(path)
        shutil.rmtree(path, ignore_errors=True)


def append_log(path: Path, text: str) -> None:
    with path.open("ab") as file:
        file.write(text.encode())


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log, indented for an error message."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 16384))
            text = file.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return "  (no log)"
    return "\n".join(f"  {line}" for line in text[-lines:]) or "  (empty log)"

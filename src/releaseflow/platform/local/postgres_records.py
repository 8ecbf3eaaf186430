"""The records of PostgreSQL backups and restores: what was asked, by whom, and how it went.

Records are JSON files: ``<root>/_backups/<id>.json`` and ``<root>/_restores/<id>.json``. An id is
derived from the idempotency key, so the same key finds the same record from any process that shares
the root; creating a record is exclusive, so two processes racing on one key agree on one record.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

from releaseflow.platform.local.postgres_tools import token_alive
from releaseflow.platform.local.state_files import read_json, write_json

# Records stay readable by other users of the host, like the backup files they describe.
RECORD_MODE = 0o644
INTERRUPTED = (
    "interrupted: the releaseflow process that ran it (pid {pid}) stopped before it finished; start a new one"
)


class BackupStatus(StrEnum):
    """Status of a backup, and of a restore (the same three words)."""

    RUNNING = "running"  # set when the request is accepted; the background task is working on it
    SUCCEEDED = "succeeded"  # set by the task: the backup file is complete / the restore committed
    FAILED = "failed"  # set by the task, or when read after the process running it went away; see error


RestoreStatus = BackupStatus
FINISHED = frozenset({BackupStatus.SUCCEEDED, BackupStatus.FAILED})


def key_digest(kind: str, key: str) -> str:
    return hashlib.sha256(f"{kind}\0{key}".encode()).hexdigest()


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


@dataclass(frozen=True, kw_only=True)
class _Record:
    """What a backup and a restore both record; the JSON keys are the field names in camelCase."""

    id: str  # bak-/rst-<12 hex>, derived from the idempotency key
    project_id: str
    addon_id: str
    database: str
    status: BackupStatus
    run_id: str
    key_digest: str
    started_at: datetime
    ended_at: datetime | None = None
    error: str = ""
    owner_pid: int = 0  # the process running it, to notice when that process is gone
    owner_token: str | None = None
    # Which start of the operation this is (1, or 2 after an interrupted one was started again); 0 in
    # records of older releaseflow versions, whose operation ran inside the owner process.
    launch: int = 0
    interrupted: bool = False  # failed because its process died: a request with the key starts it again

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, BackupStatus):
                value = value.value
            elif isinstance(value, datetime):
                value = value.isoformat()
            data[_camel(item.name)] = value
        return data

    @staticmethod
    def _common(data: dict[str, Any]) -> dict[str, Any]:
        """The shared fields of a record read from JSON (older files may lack the optional keys)."""
        started = _time(data.get("startedAt"))
        assert started is not None
        return {
            "id": str(data["id"]),
            "project_id": str(data["projectId"]),
            "addon_id": str(data["addonId"]),
            "database": str(data.get("database", "")),
            "status": BackupStatus(data["status"]),
            "run_id": str(data.get("runId", "")),
            "key_digest": str(data.get("keyDigest", "")),
            "started_at": started,
            "ended_at": _time(data.get("endedAt")),
            "error": str(data.get("error", "")),
            "owner_pid": int(data.get("ownerPid", 0)),
            "owner_token": data.get("ownerToken"),
            "launch": int(data.get("launch", 0)),
            "interrupted": bool(data.get("interrupted", False)),
        }

    def _common_data(self) -> dict[str, Any]:
        """The shared part of a node's response data."""
        return {
            "addonId": self.addon_id,
            "projectId": self.project_id,
            "database": self.database,
            "status": self.status.value,
            "startedAt": _iso(self.started_at),
            "endedAt": _iso(self.ended_at),
            "error": self.error or None,
        }


@dataclass(frozen=True, kw_only=True)
class Backup(_Record):
    backup_type: str  # dump | snapshot
    compression: str  # gz | zstd | none
    layout: str  # how the file is made: custom, custom+zstd, directory, directory+tar+zstd
    path: str  # the file (or directory) once succeeded; while running it is written beside it
    size_bytes: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Backup:
        return cls(
            **cls._common(data),
            backup_type=str(data["backupType"]),
            compression=str(data["compression"]),
            layout=str(data["layout"]),
            path=str(data["path"]),
            size_bytes=int(data.get("sizeBytes", 0)),
        )

    def to_data(self) -> dict[str, Any]:
        """The shape of a node's response data (``${refs.<ref>.backupId}`` and so on)."""
        return {
            **self._common_data(),
            "backupId": self.id,
            "backupType": self.backup_type,
            "compressionType": self.compression,
            "sizeBytes": self.size_bytes,
            "path": self.path,
            "runId": self.run_id,
        }


@dataclass(frozen=True, kw_only=True)
class Restore(_Record):
    backup_id: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Restore:
        return cls(**cls._common(data), backup_id=str(data["backupId"]))

    def to_data(self) -> dict[str, Any]:
        return {**self._common_data(), "restoreId": self.id, "backupId": self.backup_id}


RecordT = TypeVar("RecordT", Backup, Restore)


class RecordFolder(Generic[RecordT]):
    """The records of one kind: ``<folder>/<prefix>-<12 hex>.json``."""

    def __init__(self, folder: Path, prefix: str, kind: type[RecordT]) -> None:
        self.folder = folder
        self._prefix = prefix
        self._kind: type[RecordT] = kind

    def create(self, record: RecordT) -> bool:
        """False when a record with this id exists already (same idempotency key)."""
        return write_json(self._path(record.id), record.to_json(), exclusive=True, mode=RECORD_MODE)

    def save(self, record: RecordT) -> None:
        write_json(self._path(record.id), record.to_json(), mode=RECORD_MODE)

    def load(self, record_id: str) -> RecordT | None:
        if not re.fullmatch(rf"{self._prefix}-[0-9a-f]{{12}}", record_id):
            return None
        data = read_json(self._path(record_id))
        return None if data is None else self._kind.from_json(data)

    def all(self) -> list[RecordT]:
        found = []
        for path in sorted(self.folder.glob(f"{self._prefix}-*.json")):
            data = read_json(path)
            if data is not None:
                found.append(self._kind.from_json(data))
        return found

    def launch_dir(self, record_id: str, launch: int) -> Path:
        """The folder of one start of a record's operation (its lock, marker, log and result)."""
        return self.folder / f"{record_id}.launch-{launch}"

    def _path(self, record_id: str) -> Path:
        return self.folder / f"{record_id}.json"


class Records:
    """The backup and restore records under one root."""

    def __init__(self, root: Path) -> None:
        self.backups = RecordFolder(root / "_backups", "bak", Backup)
        self.restores = RecordFolder(root / "_restores", "rst", Restore)


def orphaned(owner_pid: int, owner_token: str | None) -> bool:
    """True when the process that ran a record is gone (so nobody will ever finish it)."""
    return owner_pid <= 0 or not token_alive(owner_pid, owner_token)


def mark_interrupted(record: RecordT, now: datetime, error: str | None = None) -> RecordT:
    return replace(
        record,
        status=BackupStatus.FAILED,
        ended_at=now,
        error=error or INTERRUPTED.format(pid=record.owner_pid),
        interrupted=True,
    )

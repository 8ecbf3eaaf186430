"""Typed views of the rows the engine works with (JSON columns decoded, times as aware datetimes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, NamedTuple

from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.domain.template import NodeKind
from releaseflow.store.database import Row, from_epoch


def dump_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def load_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class FlowRecord:
    id: str
    project_id: str
    pipeline_id: str
    stage: str
    current_version: int
    secret_seed: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> FlowRecord:
        return cls(
            id=row["id"],
            project_id=row["project_id"],
            pipeline_id=row["pipeline_id"],
            stage=row["stage"],
            current_version=int(row["current_version"]),
            secret_seed=row["secret_seed"],
            created_at=_time(row["created_at"]),
            updated_at=_time(row["updated_at"]),
        )


@dataclass(frozen=True)
class RunRecord:
    id: str
    flow_id: str
    flow_version: int
    seq: int
    kind: str
    rollback_of: str | None
    triggered_by: str
    name: str | None
    description: str
    status: RunStatus
    arguments: dict[str, Any]
    overrides: dict[str, Any]
    release_node_overrides: dict[str, Any]
    document_json: str
    error: str | None
    waiting_reason: str | None
    created_at: datetime
    started_at: datetime | None
    concluded_at: datetime | None
    updated_at: datetime
    # What started the run (``domain.run_origin``): its kind and who or what.
    origin_kind: str = "person"
    origin_by: str = ""
    resumed_from: str | None = None  # the failed run this one resumes
    # The values of ``${refs.<trigger>.*}`` by trigger ref, fixed when the run was created.
    trigger_refs: dict[str, Any] = field(default_factory=dict)
    # Keys of ``arguments`` whose values are encrypted tokens (``engine.secrets``).
    secret_arguments: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @cached_property
    def document(self) -> dict[str, Any]:
        """The template the run executes; decoded on first use (it can be large, most reads skip it)."""
        document: dict[str, Any] = load_json(self.document_json)
        return document

    @classmethod
    def from_row(cls, row: Row) -> RunRecord:
        return cls(
            id=row["id"],
            flow_id=row["flow_id"],
            flow_version=int(row["flow_version"]),
            seq=int(row["seq"]),
            kind=row["kind"],
            rollback_of=row["rollback_of"],
            triggered_by=row["triggered_by"],
            name=row["name"],
            description=row["description"],
            status=RunStatus(row["status"]),
            arguments=load_json(row["arguments"]),
            overrides=load_json(row["overrides"]),
            release_node_overrides=load_json(row["release_node_overrides"]),
            document_json=row["document"],
            error=row["error"],
            waiting_reason=row["waiting_reason"],
            created_at=_time(row["created_at"]),
            started_at=from_epoch(row["started_at"]),
            concluded_at=from_epoch(row["concluded_at"]),
            updated_at=_time(row["updated_at"]),
            origin_kind=row["origin_kind"],
            origin_by=row["origin_by"],
            resumed_from=row["resumed_from"],
            trigger_refs=load_json(row["trigger_refs"]),
            secret_arguments=tuple(load_json(row["secret_arguments"])),
        )


@dataclass(frozen=True)
class NodeRecord:
    id: str
    run_id: str
    path: str
    parent_path: str | None
    kind: NodeKind
    ref: str | None
    status: NodeStatus
    attempt: int
    max_attempts: int
    due_at: datetime | None
    became_due_at: datetime | None
    lease_owner: str | None
    lease_token: int
    lease_expires_at: datetime | None
    wait_deadline: datetime | None
    next_attempt_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    code: Any
    data: Any
    error: dict[str, Any] | None
    attempts: list[dict[str, Any]]
    wait_state: Any
    cause: str | None
    # Resolved when an attempt begins (None before, and the engine's defaults apply).
    backoff_seconds: float | None = None
    timeout_seconds: float | None = None
    # Set when a resume carried this node over: the run whose response it keeps (it did not run again).
    carried_from: str | None = None

    @classmethod
    def from_row(cls, row: Row) -> NodeRecord:
        return cls(
            id=row["id"],
            run_id=row["run_id"],
            path=row["path"],
            parent_path=row["parent_path"],
            kind=NodeKind(row["kind"]),
            ref=row["ref"],
            status=NodeStatus(row["status"]),
            attempt=int(row["attempt"]),
            max_attempts=int(row["max_attempts"]),
            due_at=from_epoch(row["due_at"]),
            became_due_at=from_epoch(row["became_due_at"]),
            lease_owner=row["lease_owner"],
            lease_token=int(row["lease_token"]),
            lease_expires_at=from_epoch(row["lease_expires_at"]),
            wait_deadline=from_epoch(row["wait_deadline"]),
            next_attempt_at=from_epoch(row["next_attempt_at"]),
            started_at=from_epoch(row["started_at"]),
            ended_at=from_epoch(row["ended_at"]),
            code=load_json(row["code"]),
            data=load_json(row["data"]),
            error=load_json(row["error"]),
            attempts=load_json(row["attempts"]) or [],
            wait_state=load_json(row["wait_state"]),
            cause=row["cause"],
            backoff_seconds=row["backoff_seconds"],
            timeout_seconds=row["timeout_seconds"],
            carried_from=row["carried_from"],
        )


_NODE_STATUSES = {str(status): status for status in NodeStatus}


class NodeState(NamedTuple):
    """A node as progress planning changes it: which row, and the status it was seen with."""

    id: str
    run_id: str
    path: str
    status: NodeStatus


@dataclass
class RunNodes:
    """What progress planning needs of every node of a run, read on every step of the run: plain
    maps by path, built in one pass over the rows without decoding anything."""

    ids: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, NodeStatus] = field(default_factory=dict)
    due: set[str] = field(default_factory=set)  # paths of leaves already handed to the workers

    @classmethod
    def from_rows(cls, ids: dict[str, str], rows: list[Row]) -> RunNodes:
        """``ids``: every node of the run; ``rows``: those that are not plain pending ones."""
        statuses = dict.fromkeys(ids, NodeStatus.PENDING)
        due = set()
        for row in rows:
            path = row["path"]
            statuses[path] = _NODE_STATUSES[row["status"]]
            if row["became_due_at"] is not None:
                due.add(path)
        return cls(ids, statuses, due)


@dataclass(frozen=True)
class EventRecord:
    id: int
    run_id: str
    node_path: str | None
    at: datetime
    from_status: str | None
    to_status: str
    cause: str

    @classmethod
    def from_row(cls, row: Row) -> EventRecord:
        return cls(
            id=int(row["id"]),
            run_id=row["run_id"],
            node_path=row["node_path"],
            at=_time(row["at"]),
            from_status=row["from_status"],
            to_status=row["to_status"],
            cause=row["cause"],
        )


def _time(value: float) -> datetime:
    moment = from_epoch(value)
    assert moment is not None
    return moment

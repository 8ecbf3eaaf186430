"""Records of what runs made on platforms: builds, job runs, deploys and backups, with their logs.

A record is a node of a run that acted on a resource (a Build, JobRun, Release or AddonBackup node
that started), seen as what it made: its id is the node's (unique across runs, so a record can be
looked up by id alone and its project checked), and ``platform_id`` is the id the driver gave what
it made (a build, a job run, a deployment, a backup). The log of a record is the one its driver keeps
(``engine.logs``); releaseflow keeps no copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from releaseflow.domain.errors import Issue, NotFoundError, ValidationError
from releaseflow.domain.secret_values import mask
from releaseflow.domain.statuses import NodeStatus
from releaseflow.domain.template import NodeKind
from releaseflow.engine.logs import read_log_lines, read_logs
from releaseflow.engine.queries import resolve_stage
from releaseflow.platform.driver import DriverRegistry, LogLines, LogSource
from releaseflow.store import catalog
from releaseflow.store import platform_records as store
from releaseflow.store.database import Database, Row


class RecordKind(StrEnum):
    BUILD = "build"  # a Build node: a build of a build service
    JOB_RUN = "job-run"  # a JobRun node: one run of a job
    DEPLOY = "deploy"  # a Release node: an artifact put on a service or a job
    BACKUP = "backup"  # an AddonBackup node: a backup of an addon


_NODE_KIND = {
    RecordKind.BUILD: NodeKind.BUILD,
    RecordKind.JOB_RUN: NodeKind.JOB_RUN,
    RecordKind.DEPLOY: NodeKind.RELEASE,
    RecordKind.BACKUP: NodeKind.ADDON_BACKUP,
}
_RECORD_KIND = {node: record for record, node in _NODE_KIND.items()}
# Where the resolved spec of each kind names its resource, and the resource's kind when the spec
# does not say it (a Release names its target's type).
_RESOURCE_FIELD = {RecordKind.BUILD: "id", RecordKind.JOB_RUN: "jobId", RecordKind.BACKUP: "addonId"}
_RESOURCE_KIND = {RecordKind.BUILD: "build_service", RecordKind.JOB_RUN: "job", RecordKind.BACKUP: "addon"}
# The kinds of resource each kind of record can act on.
_ACTS_ON = {
    RecordKind.BUILD: ("build_service",),
    RecordKind.JOB_RUN: ("job",),
    RecordKind.DEPLOY: ("service", "job"),
    RecordKind.BACKUP: ("addon",),
}
# The log a driver keeps of each kind's work (a deploy: the service's output; a backup: none).
_LOG_SOURCE = {RecordKind.BUILD: LogSource.BUILD, RecordKind.JOB_RUN: LogSource.JOB_RUN}


@dataclass(frozen=True)
class PlatformRecord:
    id: str
    kind: RecordKind
    status: NodeStatus
    project_id: str
    pipeline_id: str
    stage: str
    run_id: str
    node_path: str
    node_ref: str | None
    resource_id: str | None  # None when the node's spec names none (it failed before acting)
    resource_kind: str | None  # build_service, job, service or addon
    platform_id: str | None  # what the driver made, once it answered
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class RecordFilter:
    """Which records of a project: each field given narrows them."""

    kinds: Sequence[RecordKind] = tuple(RecordKind)
    pipeline_id: str | None = None
    stage: str | None = None  # any case; it needs its pipeline
    run_id: str | None = None
    resource_id: str | None = None
    platform_id: str | None = None  # the id the platform gave (a build's bld-..., a job run's)

    def coarse(self) -> bool:
        """Whether the database narrows only coarsely, so that rows read may still be dropped."""
        return self.resource_id is not None or self.platform_id is not None

    def admits(self, record: PlatformRecord) -> bool:
        return (self.resource_id is None or record.resource_id == self.resource_id) and (
            self.platform_id is None or record.platform_id == self.platform_id
        )


@dataclass(frozen=True)
class RecordPage:
    records: list[PlatformRecord]
    next_cursor: str | None  # None: this was the last page


# How many rows a page reads beyond what it needs, when a resource filter may drop some.
_SLACK = 10


async def records_page(
    db: Database, project_id: str, wanted: RecordFilter, *, cursor: str | None = None, limit: int = 50
) -> RecordPage:
    """The project's records after ``cursor`` (None: from the newest), at most ``limit`` of them.

    An unknown project, pipeline, stage or resource is not found, rather than answered with no records.
    The database narrows by resource and platform id coarsely (the node's code or answer mentions
    it); the exact field is checked here, reading on until the page is full or the history ends.
    """
    where = await _node_filter(db, project_id, wanted)
    after = _key(cursor) if cursor is not None else None
    # Each record with its key (the stored start, not the datetime made of it: that is rounded).
    found: list[tuple[PlatformRecord, tuple[float, str]]] = []
    while True:
        asked = limit + 1 - len(found) + (_SLACK if wanted.coarse() else 0)
        async with db.read() as tx:
            rows = await store.node_records(tx, where, after=after, limit=asked)
        for row in rows:
            record = _record(row)
            if wanted.admits(record):
                found.append((record, (row["started_epoch"], row["id"])))
                if len(found) > limit:
                    moment, node_id = found[limit - 1][1]
                    return RecordPage([item for item, _ in found[:limit]], f"{moment!r}/{node_id}")
        if len(rows) < asked:
            return RecordPage([item for item, _ in found], None)
        after = (rows[-1]["started_epoch"], rows[-1]["id"])


async def latest_of(
    db: Database, project_id: str, resource_id: str, resource_kind: str
) -> PlatformRecord | None:
    """The newest record acting on the resource (only the kinds that can act on its kind are read)."""
    kinds = [kind for kind, acts_on in _ACTS_ON.items() if resource_kind in acts_on]
    if not kinds:
        return None
    page = await records_page(db, project_id, RecordFilter(kinds=kinds, resource_id=resource_id), limit=1)
    return page.records[0] if page.records else None


async def _node_filter(db: Database, project_id: str, wanted: RecordFilter) -> store.NodeFilter:
    stage = wanted.stage
    if stage is not None:
        if wanted.pipeline_id is None:
            raise ValidationError([Issue("stage", "a stage needs its pipeline")], subject="the filter")
        stage = await resolve_stage(db, project_id, wanted.pipeline_id, stage)
    async with db.read() as tx:
        if project_id not in {row["id"] for row in await catalog.list_projects(tx)}:
            raise NotFoundError(f"no project '{project_id}'")
        if (
            wanted.pipeline_id is not None
            and await catalog.get_pipeline(tx, project_id, wanted.pipeline_id) is None
        ):
            raise NotFoundError(f"no pipeline '{wanted.pipeline_id}' in project '{project_id}'")
        if wanted.resource_id is not None:
            known = await catalog.list_resources(tx, project_id, include_archived=True)
            if wanted.resource_id not in {row["id"] for row in known}:
                raise NotFoundError(f"no resource '{wanted.resource_id}' in project '{project_id}'")
    return store.NodeFilter(
        project_id,
        [str(_NODE_KIND[kind]) for kind in wanted.kinds],
        pipeline_id=wanted.pipeline_id,
        stage=stage,
        run_id=wanted.run_id,
        mentions=wanted.resource_id,
        answered=wanted.platform_id,
    )


def _key(cursor: str) -> tuple[float, str]:
    moment, _, node_id = cursor.partition("/")
    try:
        return float(moment), node_id
    except ValueError:
        raise ValidationError(
            [Issue("cursor", f"'{cursor}' is not a cursor this server gave")], subject="the page request"
        ) from None


async def record_in_project(db: Database, project_id: str, record_id: str) -> PlatformRecord:
    """The record ``record_id`` of the project. One of another project is not found either: a
    caller of one project learns nothing of the others."""
    async with db.read() as tx:
        row = await store.node_record(tx, record_id)
    return _in_project(row, project_id, f"'{record_id}'")


async def record_of_node(db: Database, project_id: str, run_id: str, path: str) -> PlatformRecord:
    """The record of the node at ``path`` of run ``run_id`` (the run that acted: for a node a resume
    carried over, the run it came from)."""
    async with db.read() as tx:
        row = await store.node_record_at(tx, run_id, path)
    return _in_project(row, project_id, f"of node '{path}' of run {run_id}")


def _in_project(row: Row | None, project_id: str, named: str) -> PlatformRecord:
    if (
        row is None
        or row["project_id"] != project_id
        or NodeKind(row["kind"]) not in _RECORD_KIND
        or row["started_at"] is None
    ):
        raise NotFoundError(f"no build, job run, deploy or backup record {named} in project '{project_id}'")
    return _record(row)


async def record_log(
    db: Database, drivers: DriverRegistry, record: PlatformRecord, *, lines: int
) -> list[str]:
    """The last ``lines`` lines of the log the resource's driver keeps of the record's work."""
    source, key = log_of(record)
    return await read_logs(drivers, await _driver_of(db, record), source, key, lines=lines)


async def record_log_lines(
    db: Database, drivers: DriverRegistry, record: PlatformRecord, *, after: int | None, limit: int
) -> LogLines:
    """The same log's complete lines, numbered from its start: at most ``limit`` past line ``after``,
    or its last ``limit``."""
    source, key = log_of(record)
    driver = await _driver_of(db, record)
    return await read_log_lines(drivers, driver, source, key, after=after, limit=limit)


async def _driver_of(db: Database, record: PlatformRecord) -> str:
    """The driver of the resource the record's work acted on (it keeps the log)."""
    async with db.read() as tx:
        resources = await catalog.list_resources(tx, record.project_id, include_archived=True)
    driver = next((row["driver"] for row in resources if row["id"] == record.resource_id), None)
    if driver is None:
        raise NotFoundError(f"resource '{record.resource_id}' of record '{record.id}' no longer exists")
    return str(driver)


def log_of(record: PlatformRecord) -> tuple[LogSource, str]:
    """The log that tells what the record's work did, as ``releaseflow logs SOURCE KEY`` names it."""
    if record.kind is RecordKind.BACKUP:
        raise NotFoundError(
            f"backup record '{record.id}' has no log: drivers keep none of backups (its status and"
            " error say how it went)"
        )
    if record.kind is RecordKind.DEPLOY:
        if record.resource_kind != "service" or record.resource_id is None:
            raise NotFoundError(
                f"deploy record '{record.id}' has no log: a deploy to a job runs nothing (the job's"
                " runs have logs)"
            )
        return LogSource.SERVICE, record.resource_id
    if record.platform_id is None:
        raise NotFoundError(
            f"{record.kind} record '{record.id}' has no log: the platform never answered it"
            + (f" ({record.error})" if record.error else "")
        )
    return _LOG_SOURCE[record.kind], record.platform_id


def _record(row: Row) -> PlatformRecord:
    kind = _RECORD_KIND[NodeKind(row["kind"])]
    spec = _mapping(_mapping(row["code"]).get("spec"))
    data = _mapping(row["data"])
    if kind is RecordKind.DEPLOY:
        target = _mapping(spec.get("target"))
        resource_id, resource_kind = _text(target.get("id")), _text(target.get("type"))
        platform_id = _text(data.get("deploymentId"))
    else:
        resource_id, resource_kind = _text(spec.get(_RESOURCE_FIELD[kind])), _RESOURCE_KIND[kind]
        platform_id = _text(data.get("id"))
    # Resolved code and answers keep secret values as markers: shown masked, as in a run's detail.
    error = mask(_mapping(row["error"]).get("message"))
    return PlatformRecord(
        id=row["id"],
        kind=kind,
        status=NodeStatus(row["status"]),
        project_id=row["project_id"],
        pipeline_id=row["pipeline_id"],
        stage=row["stage"],
        run_id=row["run_id"],
        node_path=row["path"],
        node_ref=row["ref"],
        resource_id=resource_id,
        resource_kind=resource_kind,
        platform_id=platform_id,
        attempts=int(row["attempt"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        error=str(error) if error is not None else None,
        data=mask(data),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None

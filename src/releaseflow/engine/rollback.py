"""Rollback: a run that returns a stage to the release state it had right after an earlier run.

The plan comes from recorded state (``run_release_states`` of the run rolled back to), is checked
against the drivers (every artifact must still exist) and becomes a release flow document of Release
nodes that runs through the ordinary engine path: the same admission, drivers, statuses, retries and
waiting as any run. Afterwards the stage is pinned (``engine.pins``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from releaseflow.domain.errors import ConflictError, Issue, NotFoundError, ValidationError
from releaseflow.domain.rollback import (
    RollbackPlan,
    describe_artifact,
    plan_rollback,
    restore_document,
    rollback_document,
)
from releaseflow.domain.run_origin import OriginKind, RunOrigin
from releaseflow.domain.statuses import TERMINAL_RUN_STATUSES
from releaseflow.domain.template import ConcurrencyPolicy
from releaseflow.domain.template_parser import parse_template
from releaseflow.engine.commands import Engine, RunRequest
from releaseflow.engine.pins import Pin, read_pin
from releaseflow.platform.driver import Artifact, ArtifactChecker, DriverError, DriverRegistry, Resource
from releaseflow.store import catalog, history
from releaseflow.store import release_state as state_store
from releaseflow.store import runs as run_store
from releaseflow.store.database import Transaction
from releaseflow.store.records import FlowRecord, RunRecord

SIDE_EFFECTS_WARNING = (
    "Database migrations, job runs and other side effects of the runs since then are not undone;"
    " only what each service and job runs changes."
)


@dataclass(frozen=True)
class BackupOffer:
    """A backup of one of the stage's addons, taken by the run rolled back to or a later one."""

    run_id: str
    addon_id: str
    backup_id: str
    node_ref: str | None
    taken_at: datetime | None


@dataclass(frozen=True)
class RollbackPreview:
    """What a rollback to ``target_run`` would do, shown before it starts."""

    target_run: RunRecord
    project_id: str
    pipeline_id: str
    stage: str
    plan: RollbackPlan
    missing: tuple[str, ...]  # artifacts that no longer exist, one line each: the rollback is refused
    backups: tuple[BackupOffer, ...]
    config_version: int  # the flow version the run used (restored with ``restore_config``)
    current_version: int
    pin: Pin | None
    warning: str = SIDE_EFFECTS_WARNING


@dataclass(frozen=True)
class RollbackStarted:
    run: RunRecord
    preview: RollbackPreview
    restored_version: int | None  # the new flow version, when the configuration was restored


class Rollbacks:
    """The rollback commands. The drivers answer whether artifacts still exist."""

    def __init__(self, engine: Engine, drivers: DriverRegistry) -> None:
        self.engine = engine
        self.drivers = drivers

    async def preview(self, run_id: str) -> RollbackPreview:
        async with self.engine.db.read() as tx:
            preview = await _preview(tx, run_id)
        missing = await self._missing(preview.plan, await self._resources(preview.project_id))
        return replace(preview, missing=missing)

    async def start(
        self, run_id: str, *, by: str, restore_config: bool = False, name: str | None = None
    ) -> RollbackStarted:
        """Start the rollback to run ``run_id``; refused, creating nothing, when an artifact is missing."""
        if not by.strip():
            raise ValidationError([Issue("by", "say who rolls back")], subject="rollback")
        checked = await self.preview(run_id)
        if checked.missing:
            raise ConflictError(
                f"rollback to run {checked.target_run.display_name} refused: these artifacts no longer"
                " exist:\n" + "\n".join(f"  {line}" for line in checked.missing)
            )
        async with self.engine.db.transaction() as tx:
            # Planned again under the transaction: what the targets run now may have moved meanwhile;
            # the artifacts to put back cannot (they are the record of a concluded run).
            preview = await _preview(tx, run_id)
            flow = await _flow_of(tx, preview.target_run)
            restored = None
            if restore_config:
                restored = await self._restore_config(tx, flow, preview)
                flow = await _flow_of(tx, preview.target_run)
            document = rollback_document(preview.plan, await _policy(tx, flow))
            target = preview.target_run.display_name
            request = RunRequest(
                name=name,
                description=f"Rollback to run {target}"[:200],
                origin=RunOrigin(OriginKind.ROLLBACK, by),
            )
            run = await self.engine.create_run(
                tx, flow, document, request, kind="rollback", rollback_of=run_id
            )
            await history.record_rollback_targets(
                tx,
                run.id,
                [
                    {
                        "resource_id": change.resource_id,
                        "kind": change.kind,
                        "from_artifact": change.from_artifact,
                        "to_artifact": change.to_artifact,
                    }
                    for change in preview.plan.changes
                ],
            )
            reason = f"rolled back to run {target}" + (
                f" with its configuration (version {restored})" if restored else ""
            )
            await history.set_pin(
                tx, flow.id, by=by, reason=reason, run_id=run.id, at=self.engine.clock.now()
            )
            return RollbackStarted(run, preview, restored)

    async def restore_backup(
        self, project_id: str, pipeline_id: str, stage: str, addon_id: str, backup_id: str, *, by: str
    ) -> RunRecord:
        """Restore a backup one of the stage's runs took of one of its addons: a run of its own (one
        Action, AddonBackup restore), never part of a rollback. The pin is left as it is."""
        if not by.strip():
            raise ValidationError([Issue("by", "say who restores")], subject="restore")
        async with self.engine.db.transaction() as tx:
            flow = await catalog.get_flow(tx, project_id, pipeline_id, stage)
            if flow is None:
                raise NotFoundError(
                    f"stage '{stage}' of pipeline '{project_id}/{pipeline_id}' has no release flow"
                )
            addons = {row["id"] for row in await catalog.stage_resources(tx, project_id, pipeline_id, stage)}
            taken = {(offer.addon_id, offer.backup_id) for offer in await _backups(tx, flow.id, 0, addons)}
            if (addon_id, backup_id) not in taken:
                raise NotFoundError(
                    f"no backup '{backup_id}' of addon '{addon_id}' was taken by a run of stage '{stage}'"
                    " (releaseflow rollback RUN lists the backups it offers)"
                )
            document = restore_document(addon_id, backup_id, await _policy(tx, flow))
            request = RunRequest(
                description=f"Restore backup {backup_id} of {addon_id}"[:200],
                origin=RunOrigin(OriginKind.PERSON, by),
            )
            return await self.engine.create_run(tx, flow, document, request)

    async def _restore_config(self, tx: Transaction, flow: FlowRecord, preview: RollbackPreview) -> int:
        old = await catalog.get_flow_version(tx, flow.id, preview.config_version)
        assert old is not None
        origin = f"restored from run {preview.target_run.id} (version {preview.config_version})"
        now = self.engine.clock.now()
        return await catalog.add_flow_version(
            tx, flow.project_id, flow.pipeline_id, flow.stage, old["document"], origin, now
        )

    async def _resources(self, project_id: str) -> dict[str, Resource]:
        async with self.engine.db.read() as tx:
            rows = await catalog.list_resources(tx, project_id, include_archived=True)
        return {row["id"]: Resource(row["id"], row["kind"], row["driver"], row["spec"]) for row in rows}

    async def _missing(self, plan: RollbackPlan, resources: Mapping[str, Resource]) -> tuple[str, ...]:
        """One line per artifact a driver says no longer exists (drivers without the capability are
        trusted: their deploy says so if it is gone)."""
        missing = []
        for change in plan.changes:
            resource = resources.get(change.resource_id)
            if resource is None:
                missing.append(f"{change.resource_id}: the resource no longer exists")
                continue
            try:
                driver = self.drivers.get(resource.driver)
            except DriverError as error:
                missing.append(f"{change.resource_id}: {error}")
                continue
            if isinstance(driver, ArtifactChecker) and not await driver.artifact_exists(
                Artifact.from_data(change.to_artifact), resources
            ):
                missing.append(f"{change.resource_id}: {describe_artifact(change.to_artifact)}")
        return tuple(missing)


async def _preview(tx: Transaction, run_id: str) -> RollbackPreview:
    run = await run_store.get_run(tx, run_id)
    if run is None:
        raise NotFoundError(f"no run '{run_id}' to roll back to")
    if run.status not in TERMINAL_RUN_STATUSES:
        raise ConflictError(
            f"run {run.display_name} is still {run.status}: roll back to a run that has ended"
        )
    flow = await _flow_of(tx, run)
    after = await history.state_after_run(tx, run_id)
    if not after:
        raise ConflictError(
            f"no release state was recorded when run {run.display_name} ended (nothing was deployed to the"
            " stage yet, or the run ended before releaseflow kept release state with runs)"
        )
    current = await state_store.stage_state(tx, flow.project_id, flow.pipeline_id, flow.stage)
    held = await catalog.stage_resources(tx, flow.project_id, flow.pipeline_id, flow.stage)
    plan = plan_rollback(
        run_id,
        {resource_id: row["artifact"] for resource_id, row in after.items()},
        {row["resource_id"]: row["artifact"] for row in current},
        [(row["id"], row["kind"]) for row in held],
    )
    addons = {row["id"] for row in held if row["kind"] == "addon"}
    return RollbackPreview(
        target_run=run,
        project_id=flow.project_id,
        pipeline_id=flow.pipeline_id,
        stage=flow.stage,
        plan=plan,
        missing=(),
        backups=tuple(await _backups(tx, flow.id, run.seq, addons)),
        config_version=run.flow_version,
        current_version=flow.current_version,
        pin=await read_pin(tx, flow.id),
    )


async def _policy(tx: Transaction, flow: FlowRecord) -> ConcurrencyPolicy:
    """The concurrency policy of the flow's current version (a rollback follows it)."""
    version = await catalog.get_flow_version(tx, flow.id, flow.current_version)
    assert version is not None
    return parse_template(version["document"]).concurrency_policy


async def _flow_of(tx: Transaction, run: RunRecord) -> FlowRecord:
    flow = await catalog.get_flow_by_id(tx, run.flow_id)
    assert flow is not None
    if await catalog.flow_archived(tx, flow.id):
        raise ConflictError(f"the release flow of stage '{flow.stage}' is archived; restore it first")
    return flow


async def _backups(tx: Transaction, flow_id: str, seq: int, addons: set[str]) -> list[BackupOffer]:
    offers = []
    for row in await history.addon_backups_since(tx, flow_id, seq):
        spec = (row["code"] or {}).get("spec") if isinstance(row["code"], Mapping) else None
        addon = spec.get("addonId") if isinstance(spec, Mapping) else None
        data = row["data"] if isinstance(row["data"], Mapping) else {}
        if addon in addons and data.get("id"):
            offers.append(
                BackupOffer(row["run_id"], str(addon), str(data["id"]), row["ref"], row["ended_at"])
            )
    return offers

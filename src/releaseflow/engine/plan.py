"""Plan before apply: what a run will do, decided in the transaction that would create it.

``prepare_run`` is the part of starting a run that decides nothing yet (the template with the run's
overrides, its checks, the arguments, the dry run); ``start_run``, ``resume_run`` and ``plan_run``
share it. ``plan_run`` stops there and says what would happen; a started run stores its plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from releaseflow.domain import expressions
from releaseflow.domain.concurrency import Admission, admit
from releaseflow.domain.errors import ConflictError, Issue, NotFoundError, ValidationError
from releaseflow.domain.git_rules import run_trigger_refs, split_trigger_overrides
from releaseflow.domain.overrides import apply_run_overrides
from releaseflow.domain.rollback import admission_policy
from releaseflow.domain.run_plan import admission_plan, release_plan, run_plan
from releaseflow.domain.secret_values import hide, mask, mask_arguments, secret_texts
from releaseflow.domain.template import Node, Template
from releaseflow.domain.template_parser import parse_template
from releaseflow.domain.template_rules import check_refs, check_template
from releaseflow.engine.dry_run import dry_run
from releaseflow.engine.scope import stage_scope
from releaseflow.store import catalog
from releaseflow.store import release_state as state_store
from releaseflow.store import runs as run_store
from releaseflow.store.database import Database, Transaction
from releaseflow.store.records import FlowRecord


async def current_flow(tx: Transaction, project_id: str, pipeline_id: str, stage: str) -> FlowRecord:
    """The stage's release flow, which a new run will run; says why when there is none to run."""
    flow = await catalog.get_flow(tx, project_id, pipeline_id, stage)
    if flow is None:
        if await catalog.get_flow(tx, project_id, pipeline_id, stage, include_archived=True):
            raise ConflictError(
                f"the release flow of stage '{stage}' of pipeline '{project_id}/{pipeline_id}' is archived"
                " (pruned from the configuration); declare it in the file again to restore it"
            )
        raise NotFoundError(f"no release flow for stage '{stage}' of pipeline '{project_id}/{pipeline_id}'")
    return flow


@dataclass(frozen=True)
class PreparedRun:
    """A run request made concrete against one version of a stage's release flow."""

    flow: FlowRecord
    version: int
    document: dict[str, Any]
    template: Template
    arguments: dict[str, Any]
    overrides: Mapping[str, Any]
    release_node_overrides: Mapping[str, Any]
    # ``${refs.<trigger>.*}`` by trigger ref: the event's values over the overrides keyed by the
    # trigger's ref, over the trigger's own configuration (``domain.git_rules.run_trigger_refs``).
    trigger_refs: Mapping[str, Mapping[str, Any]]
    problems: list[Issue]  # what the dry run cannot resolve: the run fails before any node starts
    # Keys of ``arguments`` that are secret (the template's ``secretArguments`` and the request's
    # secret arguments): in the clear here, stored encrypted, shown masked.
    secret_keys: tuple[str, ...] = ()


class RunInputs(Protocol):
    """What a request gives a run: a run request, or a failed run's inputs with a resume's edits."""

    @property
    def arguments(self) -> Mapping[str, Any]: ...

    @property
    def secret_arguments(self) -> Mapping[str, Any]: ...

    @property
    def overrides(self) -> Mapping[str, Any]: ...

    @property
    def trigger_refs(self) -> Mapping[str, Mapping[str, Any]]: ...

    @property
    def release_node_overrides(self) -> Mapping[str, Any]: ...


async def prepare_run(
    tx: Transaction, flow: FlowRecord, version: int, inputs: RunInputs, *, now: datetime
) -> PreparedRun:
    """Apply the overrides to that version and check the result against the stage.

    A request that cannot make a run (bad overrides, a template that no longer fits the stage)
    raises ValidationError.
    """
    row = await catalog.get_flow_version(tx, flow.id, version)
    assert row is not None, (flow.id, version)
    # Overrides keyed by a trigger's ref set that trigger's values; the others override nodes.
    node_overrides, trigger_values = split_trigger_overrides(
        row["document"], inputs.overrides, inputs.trigger_refs
    )
    document = apply_run_overrides(
        row["document"], node_overrides or None, inputs.release_node_overrides or None
    )
    return await prepare_document(tx, flow, version, document, inputs, now=now, trigger_values=trigger_values)


async def prepare_document(
    tx: Transaction,
    flow: FlowRecord,
    version: int,
    document: dict[str, Any],
    inputs: RunInputs,
    *,
    now: datetime,
    trigger_values: Mapping[str, Mapping[str, Any]] | None = None,
) -> PreparedRun:
    """Check a run's document (a flow version with its overrides, or a rollback's document derived
    from recorded state) against the stage; resolve the arguments and trigger values; dry-run it."""
    template = parse_template(document)
    scope = await stage_scope(tx, flow.project_id, flow.pipeline_id, flow.stage)
    issues = check_template(template, scope) + check_refs(template)
    if issues:
        raise ValidationError(issues, subject=f"release flow {flow.pipeline_id}/{flow.stage}")
    resolved_arguments = {**template.arguments, **inputs.arguments, **inputs.secret_arguments}
    secret_keys = {*template.secret_arguments, *inputs.secret_arguments} & resolved_arguments.keys()
    trigger_refs = run_trigger_refs(template.triggers, trigger_values or {})
    return PreparedRun(
        flow=flow,
        version=version,
        document=document,
        template=template,
        arguments=resolved_arguments,
        overrides=inputs.overrides,
        release_node_overrides=inputs.release_node_overrides,
        trigger_refs=trigger_refs,
        problems=dry_run(
            template, resolved_arguments, now=now, secret_seed=flow.secret_seed, refs=trigger_refs
        ),
        secret_keys=tuple(sorted(secret_keys)),
    )


@dataclass(frozen=True)
class Queueing:
    """How the flow's concurrency policy admits a new run now, and who is there already."""

    admission: Admission
    active: list[str]
    queued: list[str]


async def queueing(tx: Transaction, prepared: PreparedRun, kind: str = "release") -> Queueing:
    """How a new run of ``kind`` would be admitted now: a release and a rollback never run side by
    side (``domain.rollback.admission_policy``)."""
    holding = await run_store.runs_holding_slot(tx, prepared.flow.id)
    waiting = await run_store.queued_runs(tx, prepared.flow.id)
    kinds = [run.kind for run in [*holding, *waiting]]
    policy = admission_policy(prepared.template.concurrency_policy, kind, kinds)
    active, queued = [run.id for run in holding], [run.id for run in waiting]
    return Queueing(admit(policy, active, queued), active, queued)


async def describe_plan(
    tx: Transaction,
    prepared: PreparedRun,
    queue: Queueing | None,
    now: datetime,
    carried_over: Sequence[str] = (),
) -> dict[str, Any]:
    """The plan document (``domain.run_plan``); ``queue`` None: the run fails its dry run, it never
    queues. Secret arguments, and whatever their values resolved into, are shown masked."""
    deployed = await state_store.current_artifacts(tx, prepared.flow.project_id)
    scope = expressions.Scope(
        args=prepared.arguments,
        refs=dict(prepared.trigger_refs),
        now=now,
        secret_seed=prepared.flow.secret_seed,
    )

    def resolve(node: Node) -> Mapping[str, Any]:
        spec, _ = expressions.resolve_partially(dict(node.spec), scope, path=f"{node.path}.spec")
        return spec if isinstance(spec, Mapping) else {}

    admission = (
        admission_plan(queue.admission, queue.active, queue.queued)
        if queue is not None
        else {"action": "fail", "reason": "the dry run failed", "position": 0, "ahead": []}
    )
    plan = run_plan(
        stage=prepared.flow.stage,
        flow_version=prepared.version,
        template=prepared.template,
        arguments=mask_arguments(prepared.arguments, prepared.secret_keys),
        overrides=prepared.overrides,
        release_node_overrides=prepared.release_node_overrides,
        admission=admission,
        problems=prepared.problems,
        releases=release_plan(prepared.template, deployed, resolve),
        carried_over=carried_over,
    )
    secrets = secret_texts(prepared.arguments, prepared.secret_keys)
    return mask(hide(plan, secrets)) if secrets else plan


async def plan_run(
    db: Database,
    project_id: str,
    pipeline_id: str,
    stage: str,
    inputs: RunInputs,
    *,
    now: datetime,
) -> dict[str, Any]:
    """What a run of the stage's current release flow would do if it were started now. Starts nothing."""
    async with db.read() as tx:
        flow = await current_flow(tx, project_id, pipeline_id, stage)
        prepared = await prepare_run(tx, flow, flow.current_version, inputs, now=now)
        queue = None if prepared.problems else await queueing(tx, prepared)
        return await describe_plan(tx, prepared, queue, now)


async def stored_plan(db: Database, run_id: str) -> Any:
    """The plan a run was started with (None for runs made before plans were kept)."""
    async with db.read() as tx:
        return await run_store.get_plan(tx, run_id)

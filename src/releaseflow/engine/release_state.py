"""Recording what a successful deploy put on its target: the stage's release state."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from releaseflow.domain.template import NodeKind
from releaseflow.store import catalog
from releaseflow.store import release_state as state_store
from releaseflow.store import runs as run_store
from releaseflow.store.database import Transaction
from releaseflow.store.records import NodeRecord


async def record_release(tx: Transaction, node: NodeRecord, data: Any, now: datetime) -> None:
    """After a Release node succeeded: its target now runs the artifact its answer names."""
    if node.kind is not NodeKind.RELEASE or not isinstance(data, Mapping):
        return
    artifact = data.get("artifact")
    spec = node.code.get("spec") if isinstance(node.code, Mapping) else None
    target = spec.get("target") if isinstance(spec, Mapping) else None
    if not isinstance(artifact, Mapping) or not isinstance(target, Mapping):
        return
    run = await run_store.get_run(tx, node.run_id)
    assert run is not None
    flow = await catalog.get_flow_by_id(tx, run.flow_id)
    assert flow is not None
    await state_store.record_deploy(
        tx,
        project_id=flow.project_id,
        resource_id=str(target.get("id")),
        pipeline_id=flow.pipeline_id,
        stage=flow.stage,
        artifact=artifact,
        run_id=run.id,
        node_path=node.path,
        at=now,
    )

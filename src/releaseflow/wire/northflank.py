"""The JSON shapes of Northflank's pipeline and release-flow API (reference section 6).

Northflank's clients read these: pipelines, release flow templates and runs, whose ``spec`` is the
template the run executes with a ``response`` object (``wire.runs.response``) on every node that
started. Run statuses use Northflank's words (``failure``, not ``failed``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from releaseflow.domain.statuses import RunStatus
from releaseflow.engine.queries import RunDetail, RunSummary
from releaseflow.engine.release_flows import FlowView, PipelineDetail, PipelineSummary
from releaseflow.wire.runs import iso, response

# Northflank's run status for ours; every other status is spelled the same.
_RUN_STATUS = {RunStatus.FAILED: "failure"}
# The other way, for the ``status`` filter: both spellings are accepted.
RUN_STATUS_WORDS = {**{str(status): status for status in RunStatus}, "failure": RunStatus.FAILED}
# Parts of a node path: ``spec.spec.steps[2]`` is spec, spec, steps, 2.
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def run_status(status: RunStatus) -> str:
    return _RUN_STATUS.get(status, str(status))


def pipeline_item(pipeline: PipelineSummary) -> dict[str, Any]:
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "description": pipeline.description,
        "createdAt": iso(pipeline.created_at),
        "updatedAt": iso(pipeline.updated_at),
    }


def pipeline_detail(detail: PipelineDetail) -> dict[str, Any]:
    return {
        **pipeline_item(detail.summary),
        "stages": [
            {
                "name": stage.name,
                "hasReleaseFlow": stage.has_flow,
                "nfObjects": [{"id": id_, "type": kind} for id_, kind in stage.resources],
            }
            for stage in detail.stages
        ],
        "nfObjects": [
            {"id": id_, "type": kind, "stage": stage.name}
            for stage in detail.stages
            for id_, kind in stage.resources
        ],
    }


def release_flow(view: FlowView) -> dict[str, Any]:
    template = view.template
    return {
        **copy.deepcopy(dict(template.document)),
        "concurrencyPolicy": str(template.concurrency_policy),
        "stage": view.stage,
        "status": run_status(view.latest_status) if view.latest_status else None,
        "paused": template.paused,
        "version": view.version,
        "createdAt": iso(view.created_at),
        "updatedAt": iso(view.updated_at),
    }


def run_item(run: RunSummary) -> dict[str, Any]:
    """One item of a runs list, in Northflank's fields (plus a few of releaseflow's own)."""
    return {
        "id": run.id,
        "name": run.name,
        "displayName": run.display_name,
        "description": run.description,
        "status": run_status(run.status),
        "concluded": run.concluded,
        "startedAt": iso(run.started_at),
        "concludedAt": iso(run.concluded_at),
        "createdAt": iso(run.created_at),
        # A run's record changes last when it concludes, else when it started or was created.
        "updatedAt": iso(run.concluded_at or run.started_at or run.created_at),
        "kind": run.kind,
        "rollbackOf": run.rollback_of,
        "triggeredBy": run.triggered_by,
        "number": run.seq,
    }


def run_detail(detail: RunDetail) -> dict[str, Any]:
    """The template the run executes, each started node with its ``response``, ``refs`` (each
    node's output by ref), and the list fields."""
    document = copy.deepcopy(dict(detail.document))
    refs: dict[str, Any] = {}
    for view in detail.root.walk() if detail.root else []:
        answer = response(view)
        if answer is not None:
            node = node_at(document, view.path)
            if isinstance(node, dict):
                node["response"] = answer
        if view.ref and view.data is not None:
            refs[view.ref] = view.data
    return {
        **document,
        "arguments": dict(detail.arguments),
        "refs": refs,
        **run_item(detail.run),
        "error": detail.run.error,
    }


def node_at(document: Mapping[str, Any], path: str) -> Any:
    """The value at a node path such as ``spec.spec.steps[2]``; None when the path leads nowhere."""
    value: Any = document
    for key, index in _PATH_PART.findall(path):
        if key and isinstance(value, Mapping):
            value = value.get(key)
        elif index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return None
    return value

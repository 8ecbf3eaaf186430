"""The read model's values from the JSON shapes ``wire`` sends: what the CLI reads from a remote server.

Decoding is the inverse of ``wire.runs`` so that the command line renders a run fetched over HTTP with
the same code, and to the same text, as one read from the database. What the shapes do not carry (a
workflow's attempt counters, a run's template document) is left at its empty value: nothing renders it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from releaseflow.domain.access import Role
from releaseflow.domain.config_plan import ACTION_SYMBOLS, OutlinedChange, PlanOutline
from releaseflow.domain.errors import ReleaseflowError
from releaseflow.domain.release_history import (
    Cell,
    Deployed,
    HistoryEntry,
    Lineage,
    StageComparison,
    StageDifference,
    StateChange,
)
from releaseflow.domain.rollback import TargetOutcome
from releaseflow.domain.run_diff import MISSING, ValueChange
from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.engine.approval_queue import WaitingApproval
from releaseflow.engine.history import PipelineOverview, SkippedTrigger, StageHeader
from releaseflow.engine.insights import RunDiff, RunSide, TimelineEntry
from releaseflow.engine.notifications import DeliveryView
from releaseflow.engine.pins import Pin
from releaseflow.engine.queries import (
    EventView,
    FlowVersionView,
    NodeView,
    Progress,
    ReleaseView,
    RunDetail,
    RunSummary,
)
from releaseflow.engine.tokens import TokenView
from releaseflow.engine.triggers import LogEntry
from releaseflow.platform.driver import LogLines
from releaseflow.store.notifications import AttemptRecord, DeliveryRecord, SubscriptionRecord

# Keys of an attempt log entry that hold a moment (epoch seconds in the read model, ISO on the wire).
_ATTEMPT_TIMES = ("startTime", "endTime")


def moment(text: str | None) -> datetime | None:
    """An ISO 8601 timestamp of ``wire.runs.iso``; None stays None."""
    return None if text is None else datetime.fromisoformat(text)


def _required_moment(text: str | None) -> datetime:
    found = moment(text)
    if found is None:
        raise ValueError("a moment is missing")
    return found


def run_summary(document: Mapping[str, Any]) -> RunSummary:
    origin = document.get("origin") or {}
    return RunSummary(
        id=document["id"],
        display_name=document["displayName"],
        name=document.get("name"),
        description=document.get("description") or "",
        kind=document["kind"],
        status=RunStatus(document["status"]),
        triggered_by=document.get("triggeredBy") or "",
        created_at=_required_moment(document["createdAt"]),
        started_at=moment(document.get("startedAt")),
        concluded_at=moment(document.get("concludedAt")),
        queued_reason=document.get("queuedReason"),
        error=document.get("error"),
        project_id=document["project"],
        pipeline_id=document["pipeline"],
        stage=document["stage"],
        flow_version=document["flowVersion"],
        seq=document["number"],
        origin_kind=origin.get("kind", "person"),
        origin_by=origin.get("by", ""),
        rollback_of=document.get("rollbackOf"),
        resumed_from=document.get("resumedFrom"),
    )


def run_detail(document: Mapping[str, Any]) -> RunDetail:
    progress = document.get("progress") or {"done": 0, "total": 0}
    spec = document.get("spec")
    return RunDetail(
        run=run_summary(document),
        arguments=dict(document.get("arguments") or {}),
        root=node(spec) if spec else None,
        progress=Progress(done=progress["done"], total=progress["total"]),
        events=tuple(event(item) for item in document.get("events") or ()),
        trigger_refs=dict(document.get("triggerRefs") or {}),
    )


def node(document: Mapping[str, Any]) -> NodeView:
    is_workflow = "steps" in document
    return NodeView(
        path=document["path"],
        ref=document.get("ref"),
        kind=document["kind"],
        workflow_type=document.get("type") if is_workflow else None,
        status=NodeStatus(document["status"]),
        attempts=document.get("attempts", 0),
        max_attempts=document.get("maxAttempts", 0),
        next_attempt=moment(document.get("nextAttempt")),
        started_at=moment(document.get("startTime")),
        ended_at=moment(document.get("endTime")),
        error=document.get("error"),
        data=document.get("data"),
        code=document.get("code"),
        code_resolved=bool(document.get("codeResolved", False)),
        cause=document.get("cause"),
        attempt_log=tuple(_attempt_entry(entry) for entry in document.get("attemptLog") or ()),
        children=tuple(node(child) for child in document.get("steps") or ()),
        carried_from=document.get("carriedFrom"),
    )


def event(document: Mapping[str, Any]) -> EventView:
    return EventView(
        id=document["id"],
        at=_required_moment(document["at"]),
        node_path=document.get("node"),
        ref=document.get("ref"),
        from_status=document.get("from"),
        to_status=document["to"],
        cause=document.get("cause") or "",
    )


def pipeline_overview(document: Mapping[str, Any]) -> PipelineOverview:
    return PipelineOverview(
        project_id=document["project"],
        pipeline_id=document["id"],
        name=document["name"],
        stages=tuple(stage_header(stage) for stage in document["stages"]),
    )


def stage_header(document: Mapping[str, Any]) -> StageHeader:
    run = document.get("run")
    return StageHeader(
        stage=document["stage"],
        has_flow=bool(document["hasReleaseFlow"]),
        run=None if run is None else run_summary(run),
        active=bool(document["active"]),
        pin=pin(document.get("pin")),
        skipped=tuple(
            SkippedTrigger(
                origin_kind=item["origin"]["kind"],
                origin_by=item["origin"]["by"],
                reason=item["reason"],
                at=moment(item.get("at")),
            )
            for item in document.get("skipped") or ()
        ),
        next_step=document["nextStep"],
    )


def pin(document: Mapping[str, Any] | None) -> Pin | None:
    if document is None:
        return None
    return Pin(
        by=document["by"],
        reason=document["reason"],
        run_id=document.get("runId"),
        at=_required_moment(document["at"]),
    )


def release(document: Mapping[str, Any]) -> ReleaseView:
    return ReleaseView(
        stage=document["stage"],
        resource_id=document["resourceId"],
        artifact=dict(document.get("artifact") or {}),
        run_id=document["runId"],
        node_path=document["nodePath"],
        deployed_at=moment(document.get("deployedAt")),
    )


def rollback_outcome(items: list[Mapping[str, Any]]) -> list[TargetOutcome]:
    return [
        TargetOutcome(
            resource_id=item["resourceId"],
            where=item["where"],
            artifact=None if item.get("artifact") is None else dict(item["artifact"]),
        )
        for item in items
    ]


def flow_version(document: Mapping[str, Any]) -> FlowVersionView:
    return FlowVersionView(
        version=document["version"],
        origin=document["origin"],
        created_at=moment(document.get("createdAt")),
        current=bool(document["current"]),
        document=document.get("document"),
    )


def plan_outline(document: Mapping[str, Any]) -> PlanOutline:
    """The plan an apply answered (``wire.configuration.applied_plan``)."""
    changes = []
    for item in document["changes"]:
        action = item["action"]
        if action not in ACTION_SYMBOLS or action == "unchanged":
            raise ReleaseflowError(f"the server answered a change this releaseflow does not know: '{action}'")
        changes.append(OutlinedChange(action, str(item["subject"]), str(item["summary"])))
    return PlanOutline(tuple(changes), unchanged=int(document["unchanged"]))


def token(document: Mapping[str, Any]) -> TokenView:
    return TokenView(
        id=document["id"],
        name=document["name"],
        project_id=document["project"],
        role=Role.parse(document["role"]),
        created_by=document["createdBy"],
        created_at=_required_moment(document["createdAt"]),
        expires_at=moment(document.get("expiresAt")),
        revoked_at=moment(document.get("revokedAt")),
        last_used_at=moment(document.get("lastUsedAt")),
    )


def waiting_approval(document: Mapping[str, Any]) -> WaitingApproval:
    return WaitingApproval(
        run_id=document["runId"],
        run_name=document["runName"],
        project_id=document["project"],
        pipeline_id=document["pipeline"],
        stage=document["stage"],
        node=document["node"],
        since=moment(document.get("since")),
        expires=moment(document.get("expires")),
        required=document["required"],
        approved_by=tuple(document["approvedBy"]),
        approvers=tuple(document["approvers"]),
        started_by=document["startedBy"],
    )


def timeline(items: list[Mapping[str, Any]]) -> list[TimelineEntry]:
    return [
        TimelineEntry(
            change=StateChange(
                entry=HistoryEntry(
                    id=0,  # the row's id is not sent: nothing shows it
                    resource_id=item["resourceId"],
                    artifact=dict(item["to"]),
                    run_id=item["runId"],
                    node_path=item["nodePath"],
                    deployed_at=moment(item.get("deployedAt")),
                ),
                previous=None if item.get("from") is None else dict(item["from"]),
            ),
            run_name=item["runName"],
            run_kind=item["runKind"],
        )
        for item in items
    ]


def run_diff(document: Mapping[str, Any]) -> RunDiff:
    return RunDiff(
        first=_run_side(document["first"]),
        second=_run_side(document["second"]),
        stage=document["stage"],
        template=list(document["template"]),
        arguments=_value_changes(document["arguments"]),
        overrides=_value_changes(document["overrides"]),
        artifacts=_value_changes(document["artifacts"]),
        same_artifacts=list(document["sameArtifacts"]),
    )


def _run_side(document: Mapping[str, Any]) -> RunSide:
    return RunSide(
        id=document["id"],
        display_name=document["displayName"],
        kind=document["kind"],
        status=document["status"],
        flow_version=document["flowVersion"],
        created_at=_required_moment(document["createdAt"]),
    )


def _value_changes(items: list[Mapping[str, Any]]) -> list[ValueChange]:
    """A side the wire leaves out is a key that run does not have (MISSING), not a null."""
    return [
        ValueChange(item["key"], item.get("first", MISSING), item.get("second", MISSING)) for item in items
    ]


def comparison(document: Mapping[str, Any]) -> StageComparison:
    return StageComparison(
        stages=tuple(document["stages"]),
        lineages=tuple(
            Lineage(
                cells=tuple(
                    Cell(
                        stage=cell["stage"],
                        resources=tuple(
                            (resource["resourceId"], _deployed(resource)) for resource in cell["resources"]
                        ),
                    )
                    for cell in lineage["cells"]
                )
            )
            for lineage in document["lineages"]
        ),
        differences=tuple(
            StageDifference(
                left=item["left"],
                right=item["right"],
                differing=tuple(item["differing"]),
                compared=item["compared"],
            )
            for item in document["differences"]
        ),
    )


def _deployed(resource: Mapping[str, Any]) -> Deployed | None:
    if resource.get("artifact") is None:
        return None
    return Deployed(
        resource_id=resource["resourceId"],
        artifact=dict(resource["artifact"]),
        run_id=resource["runId"],
        deployed_at=moment(resource.get("deployedAt")),
    )


def _attempt_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    shown = dict(entry)
    for key in _ATTEMPT_TIMES:
        value = shown.get(key)
        if isinstance(value, str):
            shown[key] = _required_moment(value).timestamp()
    return shown


def trigger_entry(document: Mapping[str, Any]) -> LogEntry:
    """One request of a stage's trigger log (``wire.control.trigger_log``)."""
    return LogEntry(
        at=_required_moment(document["at"]),
        source=str(document["source"]),
        request=str(document["request"]),
        decision=str(document["decision"]),
        reason=str(document["reason"]),
        run_id=document["runId"],
    )


def subscription(document: Mapping[str, Any], *, secret: str) -> SubscriptionRecord:
    """A notification subscription (``wire.notifications.SubscriptionShape``); the API never sends its
    secret, so the caller gives the one it knows ("" when it knows none)."""
    return SubscriptionRecord(
        id=str(document["id"]),
        project_id=str(document["project"]),
        pipeline_id=document["pipeline"],
        kind=str(document["kind"]),
        url=str(document["url"]),
        secret=secret,
        events=tuple(document["events"]),
        source=str(document["source"]),
        created_at=_required_moment(document["createdAt"]),
    )


def delivery(document: Mapping[str, Any]) -> DeliveryView:
    """A delivery with its attempts (``wire.notifications.DeliveryShape``)."""
    attempts = tuple(
        AttemptRecord(
            delivery_id=str(document["id"]),
            attempt=int(attempt["attempt"]),
            at=_required_moment(attempt["at"]),
            status_code=attempt["statusCode"],
            error=attempt["error"],
            duration_ms=float(attempt["durationMs"]),
        )
        for attempt in document["attempts"]
    )
    last = attempts[-1] if attempts else None
    record = DeliveryRecord(
        id=str(document["id"]),
        subscription_id=str(document["subscriptionId"]),
        run_id=str(document["runId"]),
        event=str(document["event"]),
        from_status=document["fromStatus"],
        to_status=str(document["toStatus"]),
        cause=str(document["cause"]),
        at=_required_moment(document["at"]),
        state=str(document["state"]),
        attempts=len(attempts),
        due_at=moment(document["nextAttemptAt"]),
        last_status_code=None if last is None else last.status_code,
        last_error=None if last is None else last.error,
        delivered_at=moment(document["deliveredAt"]),
    )
    return DeliveryView(record, attempts)


def log_lines(document: Mapping[str, Any]) -> LogLines:
    """Numbered log lines (``LogLinesShape``)."""
    lines = [str(line["text"]) for line in document["lines"]]
    return LogLines(first=int(document["first"]), lines=lines, total=int(document["total"]))

"""Executors of the node kinds that act on infrastructure, through the resource's driver.

Each kind is translated into one driver operation (``plan_request``); the common rhythm is the same
for all of them: perform; if the platform is still busy and the node must wait for completion (its
``condition``, or a Condition node), park it as waiting and follow the action on each poll.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from releaseflow.domain.template import NodeKind
from releaseflow.engine.executors.base import ExecutionContext, Failed, Outcome, Succeeded, Waiting
from releaseflow.platform.driver import (
    AnswerState,
    DriverAnswer,
    DriverError,
    DriverRegistry,
    DriverRequest,
    Operation,
    Resource,
)

# A waiting node is looked at again soon after it started waiting (most deploys and checks finish
# within a second or two), then less and less often, up to every POLL_SECONDS.
FIRST_POLL_SECONDS = 0.2
POLL_SECONDS = 2.0


def next_poll(polls: int) -> float:
    """Seconds until the next look at a node that has been polled ``polls`` times."""
    return min(FIRST_POLL_SECONDS * 1.5**polls, POLL_SECONDS)


_ACTIONS: dict[tuple[str, str], tuple[Operation, str]] = {
    # (Action spec.kind, type) -> (operation, the data field naming the resource)
    ("Service", "restart"): (Operation.RESTART_SERVICE, "serviceId"),
    ("Service", "execute"): (Operation.EXECUTE_IN_SERVICE, "serviceId"),
    ("Job", "execute"): (Operation.EXECUTE_IN_JOB, "jobId"),
    ("Addon", "restart"): (Operation.RESTART_ADDON, "addonId"),
    ("AddonBackup", "restore"): (Operation.RESTORE_BACKUP, "addonId"),
}
_CONDITIONS: dict[tuple[str, str], tuple[Operation, str | None]] = {
    ("Service", "running"): (Operation.SERVICE_RUNNING, "serviceId"),
    ("Addon", "running"): (Operation.ADDON_RUNNING, "addonId"),
    ("Build", "success"): (Operation.BUILD_SUCCEEDED, None),
    ("JobRun", "success"): (Operation.JOB_RUN_SUCCEEDED, "jobId"),
    ("AddonBackup", "success"): (Operation.BACKUP_SUCCEEDED, "addonId"),
}
_RELEASE_TYPES = {
    "build": Operation.DEPLOY_BUILD,
    "registry": Operation.DEPLOY_IMAGE,
    "deployment": Operation.DEPLOY_ARTIFACT,
}


class NodeInputError(Exception):
    """The resolved node names something that does not exist or makes no sense (not retryable)."""


def _resource(context: ExecutionContext, resource_id: Any, what: str) -> Resource:
    if not isinstance(resource_id, str) or resource_id not in context.resources:
        raise NodeInputError(f"{what} '{resource_id}' does not exist in project '{context.project_id}'")
    return context.resources[resource_id]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def plan_request(context: ExecutionContext) -> tuple[DriverRequest, bool]:
    """The driver request of a node, and whether the node waits for it to complete."""
    operation, resource, params, waits = _operation(context)
    artifact = context.deployed.get(resource.id)
    if operation is Operation.DEPLOY_ARTIFACT:
        origin = _resource(context, params.get("id"), "origin")
        artifact = context.deployed.get(origin.id)
        if artifact is None:
            raise NodeInputError(
                f"nothing to promote: {origin.kind} '{origin.id}' has no release recorded yet"
                " (deploy to it first, in the previous stage)"
            )
    request = DriverRequest(
        operation,
        resource,
        params,
        context.idempotency_key,
        artifact=artifact,
        resources=context.resources,
        project_id=context.project_id,
        stage=context.stage,
        run_id=context.run_id,
        stage_resources=context.stage_resources,
    )
    return request, waits


def _operation(context: ExecutionContext) -> tuple[Operation, Resource, Mapping[str, Any], bool]:
    spec = context.spec
    waits = context.wait_for_completion
    if context.kind is NodeKind.RELEASE:
        target = _mapping(spec.get("target"))
        operation = _RELEASE_TYPES[str(spec.get("type"))]
        resource = _resource(context, target.get("id"), str(target.get("type", "target")))
        return operation, resource, _mapping(spec.get("origin")), waits
    if context.kind is NodeKind.BUILD:
        return Operation.START_BUILD, _resource(context, spec.get("id"), "build service"), spec, waits
    if context.kind is NodeKind.JOB_RUN:
        return Operation.RUN_JOB, _resource(context, spec.get("jobId"), "job"), spec, waits
    if context.kind is NodeKind.ADDON_BACKUP:
        return Operation.BACKUP_ADDON, _resource(context, spec.get("addonId"), "addon"), spec, waits
    inner = _mapping(spec.get("spec"))
    data = _mapping(inner.get("data"))
    selector = (str(spec.get("kind")), str(inner.get("type")))
    if context.kind is NodeKind.ACTION:
        operation, field = _ACTIONS[selector]
        waits = inner.get("condition") in ("running", "success")
        return operation, _resource(context, data.get(field), field), data, waits
    if context.kind is NodeKind.CONDITION:
        check, check_field = _CONDITIONS[selector]
        if check_field is None:
            resource = _any_build_service(context)
        else:
            resource = _resource(context, data.get(check_field), check_field)
        return check, resource, data, True
    raise NodeInputError(f"node kind {context.kind} does not act on a platform")


def _any_build_service(context: ExecutionContext) -> Resource:
    # A Build condition names only a build id; any build service of the project's driver can look it up.
    drivers = {r.driver for r in context.resources.values() if r.kind == "build_service"}
    if len(drivers) != 1:
        raise NodeInputError("a Build condition needs exactly one driver among the project's build services")
    return Resource(id="", kind="build_service", driver=drivers.pop())


class PlatformExecutor:
    """Runs Release, Build, JobRun, AddonBackup, Action and Condition nodes through drivers."""

    def __init__(self, drivers: DriverRegistry) -> None:
        self._drivers = drivers

    async def start(self, context: ExecutionContext) -> Outcome:
        try:
            request, waits = plan_request(context)
            answer = await self._drivers.get(request.resource.driver).perform(request)
        except NodeInputError as error:
            return Failed(str(error), retryable=False, code=400)
        except DriverError as error:
            return Failed(str(error), retryable=error.retryable)
        return self._judge(answer, waits)

    async def poll(self, context: ExecutionContext) -> Outcome:
        try:
            request, waits = plan_request(context)
            driver = self._drivers.get(request.resource.driver)
            state = _mapping(context.wait_state)
            if context.kind is NodeKind.CONDITION:
                answer = await driver.perform(request)
            else:
                answer = await driver.follow(request, state.get("handle"))
        except NodeInputError as error:
            return Failed(str(error), retryable=False, code=400)
        except DriverError as error:
            return Failed(str(error), retryable=error.retryable)
        polls = state.get("polls")
        return self._judge(answer, waits, polls if isinstance(polls, int) else 0)

    async def cancel(self, context: ExecutionContext) -> str:
        if context.kind is NodeKind.CONDITION:
            return ""  # a check has nothing running on the platform
        try:
            request, _ = plan_request(context)
            handle = _mapping(context.wait_state).get("handle")
            return await self._drivers.get(request.resource.driver).cancel(request, handle)
        except (NodeInputError, DriverError) as error:
            return f"could not ask the platform to stop it: {error}"

    @staticmethod
    def _judge(answer: DriverAnswer, waits: bool, polls: int = 0) -> Outcome:
        data = dict(answer.data)
        if answer.state is AnswerState.FAILED:
            message = answer.message or "the platform reported a failure"
            return Failed(message, retryable=answer.retryable, data=data)
        if answer.state is AnswerState.DONE or not waits:
            return Succeeded(data)
        state = {"handle": answer.handle, "polls": polls + 1}
        return Waiting(state, poll_after=next_poll(polls), data=data)

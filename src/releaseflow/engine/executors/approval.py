"""Approval nodes: wait until enough distinct people approved (``releaseflow approve``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from releaseflow.engine.executors.base import ExecutionContext, Outcome, Succeeded, Waiting

# Approvals wake the node at once (the approve command makes it due); this is only a safety net.
POLL_SECONDS = 30.0


def required_approvals(context: ExecutionContext) -> int:
    amount = context.spec.get("amount", 1)
    return amount if isinstance(amount, int) and amount > 0 else 1


class ApprovalExecutor:
    async def start(self, context: ExecutionContext) -> Outcome:
        return self._judge(context, approvals=[])

    async def poll(self, context: ExecutionContext) -> Outcome:
        state: Mapping[str, Any] = context.wait_state if isinstance(context.wait_state, Mapping) else {}
        return self._judge(context, approvals=list(state.get("approvals", [])))

    async def cancel(self, context: ExecutionContext) -> str:
        return ""  # nothing runs anywhere: the approval simply stops being awaited

    @staticmethod
    def _judge(context: ExecutionContext, approvals: list[Any]) -> Outcome:
        needed = required_approvals(context)
        data = {"required": needed, "approvals": approvals}
        if len(approvals) >= needed:
            return Succeeded(data)
        return Waiting({"approvals": approvals}, poll_after=POLL_SECONDS, data=data)

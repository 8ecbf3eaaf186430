"""Admission of a new run under its release flow's concurrency policy (a pure decision)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from releaseflow.domain.template import ConcurrencyPolicy


class AdmissionAction(StrEnum):
    START = "start"
    QUEUE = "queue"
    REJECT = "reject"


@dataclass(frozen=True)
class Admission:
    action: AdmissionAction
    reason: str = ""
    abort_active: tuple[str, ...] = ()  # runs to abort now (replace)
    drop_queued: tuple[str, ...] = ()  # waiting runs that are superseded (latest, replace)


def admit(policy: ConcurrencyPolicy, active: Sequence[str], queued: Sequence[str]) -> Admission:
    """Decide what happens to a new run, given the flow's active and queued runs (oldest first)."""
    busy = bool(active) or bool(queued)
    if policy is ConcurrencyPolicy.ALLOW or not busy:
        return Admission(AdmissionAction.START)
    if policy is ConcurrencyPolicy.QUEUE:
        behind = queued[-1] if queued else active[-1]
        return Admission(AdmissionAction.QUEUE, reason=f"queued behind run {behind} (policy queue)")
    if policy is ConcurrencyPolicy.FORBID:
        blocking = (list(active) + list(queued))[0]
        return Admission(
            AdmissionAction.REJECT,
            reason=f"run {blocking} is still active and the release flow's concurrency policy is forbid",
        )
    if policy is ConcurrencyPolicy.LATEST:
        if not active:
            return Admission(AdmissionAction.START, drop_queued=tuple(queued))
        return Admission(
            AdmissionAction.QUEUE,
            reason=f"waiting for run {active[-1]} (policy latest: only the newest request waits)",
            drop_queued=tuple(queued),
        )
    # REPLACE: stop whatever runs, forget whatever waits, start once the aborted runs have stopped.
    if not active:
        return Admission(AdmissionAction.START, drop_queued=tuple(queued))
    return Admission(
        AdmissionAction.QUEUE,
        reason=f"waiting for replaced run(s) {', '.join(active)} to stop (policy replace)",
        abort_active=tuple(active),
        drop_queued=tuple(queued),
    )

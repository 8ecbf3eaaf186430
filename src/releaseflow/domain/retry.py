"""A node's retry and timeout settings, and retry decisions: pure functions of those, the attempt
count and the time.

The settings are resolved once, when an attempt of the node begins (from its code with every
expression resolved), and stored with the node; everything after that reads the stored values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from releaseflow.domain.template import DEFAULT_BACKOFF_SECONDS, DEFAULT_MAX_ATTEMPTS


@dataclass(frozen=True)
class NodeSettings:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    # The node's own timeoutDuration (top level, or ``spec.spec.data`` for Action and Condition);
    # None when it has none, and the engine's default for its kind applies.
    timeout_seconds: float | None = None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def resolve_settings(code: Any, *, fallback_max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> NodeSettings:
    """The settings a node's resolved code asks for; values it leaves out or gets wrong default."""
    if not isinstance(code, Mapping):
        return NodeSettings(max_attempts=fallback_max_attempts)
    settings = code.get("settings")
    settings = settings if isinstance(settings, Mapping) else {}
    attempts = settings.get("maxAttempts")
    if not (isinstance(attempts, int) and not isinstance(attempts, bool) and attempts >= 1):
        attempts = fallback_max_attempts
    backoff = settings.get("backoff")
    delay = _number(backoff.get("delay")) if isinstance(backoff, Mapping) else None
    return NodeSettings(
        max_attempts=attempts,
        backoff_seconds=delay if delay is not None and delay >= 0 else DEFAULT_BACKOFF_SECONDS,
        timeout_seconds=_timeout(code),
    )


def _timeout(code: Mapping[str, Any]) -> float | None:
    candidates = [code.get("timeoutDuration")]
    spec = code.get("spec")
    inner = spec.get("spec") if isinstance(spec, Mapping) else None
    data = inner.get("data") if isinstance(inner, Mapping) else None
    if isinstance(data, Mapping):
        candidates.append(data.get("timeoutDuration"))
    for value in candidates:
        seconds = _number(value)
        if seconds is not None and seconds > 0:
            return seconds
    return None


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    next_attempt_at: datetime | None = None
    # Why no other attempt is made (when ``retry`` is false): said in the attempt log.
    reason: str = ""


def decide_retry(
    *, attempt: int, max_attempts: int, backoff_seconds: float, retryable: bool, now: datetime
) -> RetryDecision:
    """After attempt number ``attempt`` (1-based) failed: try again, or give up.

    Errors that another attempt cannot fix (a wrong expression, a missing resource) are not retried.
    """
    if not retryable:
        return RetryDecision(retry=False, reason="not retryable")
    if attempt >= max_attempts:
        return RetryDecision(retry=False, reason=f"attempts used up ({attempt} of {max_attempts})")
    return RetryDecision(retry=True, next_attempt_at=now + timedelta(seconds=max(backoff_seconds, 0.0)))

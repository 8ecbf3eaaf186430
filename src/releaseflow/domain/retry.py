"""Retry decisions: pure functions of the attempt count, the node's settings and the time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    next_attempt_at: datetime | None = None


def decide_retry(
    *, attempt: int, max_attempts: int, backoff_seconds: float, retryable: bool, now: datetime
) -> RetryDecision:
    """After attempt number ``attempt`` (1-based) failed: try again, or give up.

    Errors that another attempt cannot fix (a wrong expression, a missing resource) are not retried.
    """
    if not retryable or attempt >= max_attempts:
        return RetryDecision(retry=False)
    return RetryDecision(retry=True, next_attempt_at=now + timedelta(seconds=max(backoff_seconds, 0.0)))

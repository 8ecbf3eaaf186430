"""The HTTP client that delivers notifications: POST a body, answer what the receiver said.

It never raises for the receiver's faults (refused connection, timeout, a 5xx): those are answers
the deliverer logs and retries. It follows no redirects: a signed body goes where it was sent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from releaseflow.domain.errors import describe_error

TIMEOUT_SECONDS = 10.0
# What is kept of a refusing receiver's answer, for the delivery log.
ANSWER_EXCERPT = 200


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    # None when the receiver accepted it (2xx).
    error: str | None
    duration_ms: float


class WebhookSender:
    def __init__(self, timeout: float = TIMEOUT_SECONDS) -> None:
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        began = time.perf_counter()
        try:
            response = await self._client.post(url, content=body, headers=dict(headers))
        except httpx.HTTPError as error:
            return SendResult(None, describe_error(error) or type(error).__name__, _since(began))
        if 200 <= response.status_code < 300:
            return SendResult(response.status_code, None, _since(began))
        answer = response.text[:ANSWER_EXCERPT].strip()
        refusal = f"HTTP {response.status_code}" + (f": {answer}" if answer else "")
        return SendResult(response.status_code, refusal, _since(began))

    async def close(self) -> None:
        await self._client.aclose()


def _since(began: float) -> float:
    return (time.perf_counter() - began) * 1000

"""Message nodes: a raw webhook (JSON POST) or a Slack incoming webhook, sent for real over HTTP."""

from __future__ import annotations

from typing import Any

import httpx

from releaseflow.domain.errors import describe_error
from releaseflow.engine.executors.base import ExecutionContext, Failed, Outcome, Succeeded

RESPONSE_BODY_LIMIT = 4096
TIMEOUT_SECONDS = 10.0


class MessageExecutor:
    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client

    async def start(self, context: ExecutionContext) -> Outcome:
        channel = str(context.spec.get("kind"))
        inner = context.spec.get("spec")
        settings: dict[str, Any] = inner if isinstance(inner, dict) else {}
        url = settings.get("webhookUrl")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return Failed(f"webhookUrl must be an http(s) URL, got {url!r}", retryable=False, code=400)
        message = settings.get("message", "")
        if channel == "SLACK":
            body: dict[str, Any] = {"text": message, "mrkdwn": True}
        else:
            body = {
                "message": message,
                "runId": context.run_id,
                "node": context.ref or context.node_path,
                "attempt": context.attempt,
            }
        headers = {"Idempotency-Key": context.idempotency_key, "User-Agent": "releaseflow"}
        try:
            response = await self._post(url, body, headers)
        except httpx.HTTPError as error:
            return Failed(f"could not deliver the message to {url}: {describe_error(error)}")
        data = {
            "url": url,
            "statusCode": response.status_code,
            "body": response.text[:RESPONSE_BODY_LIMIT],
        }
        if response.is_success:
            return Succeeded(data)
        # A 4xx will not change on retry (wrong URL or payload) unless the receiver is rate limiting.
        retryable = response.status_code >= 500 or response.status_code == 429
        return Failed(
            f"{url} answered HTTP {response.status_code}",
            retryable=retryable,
            code=response.status_code,
            data=data,
        )

    async def poll(self, context: ExecutionContext) -> Outcome:
        return Failed("a message is sent once and never waits", retryable=False)

    async def cancel(self, context: ExecutionContext) -> str:
        return ""

    async def _post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        if self._client is not None:
            return await self._client.post(url, json=body, headers=headers, timeout=TIMEOUT_SECONDS)
        async with httpx.AsyncClient() as client:
            return await client.post(url, json=body, headers=headers, timeout=TIMEOUT_SECONDS)

"""A bound on request bodies for the whole app (ASGI middleware): larger bodies are answered 413.

A body that announces its size (``Content-Length``) beyond the limit is refused before any of it is
read; one that does not announce it is counted as it arrives and cut off at the limit.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024
# The largest integer a path or query parameter may hold: what both databases store (64 bits). Every
# integer parameter declares it (tests/unit/test_api_schema.py checks), so a larger one is answered
# 400 by the request's validation instead of reaching the database.
LARGEST_INTEGER = 2**63 - 1


class _TooLarge(HTTPException):
    """Raised from ``receive``: FastAPI passes an HTTPException raised while it reads a body through
    (any other exception becomes its own 400), and the app's handler answers it in the envelope."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is larger than {limit} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        announced = headers.get(b"content-length")
        if announced is not None and (not announced.isdigit() or int(announced) > self.limit):
            problem = (
                "Content-Length is not a number" if not announced.isdigit() else _TooLarge(self.limit).detail
            )
            await _refuse(send, 400 if not announced.isdigit() else 413, problem)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge(self.limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge as refusal:
            if not started:
                await _refuse(send, 413, refusal.detail)


async def _refuse(send: Send, status: int, message: str) -> None:
    body: Any = json.dumps({"error": {"status": status, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            # The unread rest of the body must not be taken for the next request.
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

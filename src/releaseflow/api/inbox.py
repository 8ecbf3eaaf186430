"""A webhook inbox built into the server: ``Message`` nodes can be pointed at it to watch them deliver.

It keeps what it receives in memory only, bounded: the newest messages per inbox, and a limited
number of inboxes (the least recently written one is dropped first).
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

MESSAGES_PER_INBOX = 100
MAX_INBOXES = 100
MAX_BODY_BYTES = 64 * 1024
# Headers worth showing; the rest (connection details) is noise for a person watching deliveries.
_SHOWN_HEADERS = ("content-type", "user-agent", "idempotency-key")


class Inbox:
    def __init__(self, per_inbox: int = MESSAGES_PER_INBOX, max_inboxes: int = MAX_INBOXES) -> None:
        self._per_inbox = per_inbox
        self._max_inboxes = max_inboxes
        self._boxes: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        self._received = 0

    def add(self, name: str, headers: dict[str, str], body: Any) -> int:
        box = self._boxes.pop(name, None) or deque(maxlen=self._per_inbox)
        self._boxes[name] = box
        while len(self._boxes) > self._max_inboxes:
            self._boxes.popitem(last=False)
        self._received += 1
        box.append(
            {
                "id": self._received,
                "receivedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "headers": headers,
                "body": body,
            }
        )
        return len(box)

    def messages(self, name: str) -> list[dict[str, Any]]:
        return list(self._boxes.get(name, ()))

    def names(self) -> dict[str, int]:
        return {name: len(box) for name, box in self._boxes.items()}


def inbox_routes(inbox: Inbox) -> APIRouter:
    router = APIRouter(prefix="/inbox", tags=["inbox"])

    @router.get("")
    async def list_inboxes() -> dict[str, Any]:
        return {"inboxes": inbox.names()}

    @router.post("/{name}")
    async def receive(name: str, request: Request) -> JSONResponse:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return JSONResponse({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {key: value for key, value in request.headers.items() if key in _SHOWN_HEADERS}
        count = inbox.add(name, headers, body)
        return JSONResponse({"inbox": name, "stored": count})

    @router.get("/{name}")
    async def read(name: str) -> dict[str, Any]:
        return {"inbox": name, "messages": inbox.messages(name)}

    return router

"""A webhook inbox built into the server: ``Message`` nodes can be pointed at it to watch them deliver.

It keeps what it receives in memory only, and every bound is in bytes or counts that a sender cannot
stretch:

* a message body is at most ``MAX_BODY_BYTES``; a request that announces more (``Content-Length``) is
  answered 413 before any of its body is read, and one that sends more without announcing it is cut
  off at the limit (413 too);
* a body must arrive within ``BODY_SECONDS`` (408 otherwise), so a slow sender cannot hold a
  connection and its buffer for ever;
* an inbox keeps its newest messages within ``MESSAGES_PER_INBOX`` and ``MAX_INBOX_BYTES`` (its own
  oldest go first), and there are at most ``MAX_INBOXES`` inboxes. When that many exist a new name is
  refused (429) rather than evicting someone else's inbox; ``DELETE /inbox/{name}`` frees one. So the
  inbox never holds more than ``MAX_INBOXES * MAX_INBOX_BYTES`` bytes of bodies;
* bodies are stored as the bytes received (parsed objects cost many times their size in memory) and
  parsed when read; JSON nested deeper than the document limit is refused (400), never a 500.

Reading an inbox needs a token with the viewer role, deleting one the deployer role. Posting needs
a token of any role (``POST /inbox/NAME``) or the server's inbox key in the path
(``POST /inbox/KEY/NAME``): a ``Message`` node cannot send a token, so its ``webhookUrl`` carries the
key (``releaseflow serve`` prints the address at start).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from releaseflow.api.auth import inbox_key, requires
from releaseflow.api.errors import error_response
from releaseflow.domain.access import Role
from releaseflow.domain.documents import check_document_shape
from releaseflow.domain.errors import ValidationError

MESSAGES_PER_INBOX = 100
MAX_INBOXES = 64
MAX_BODY_BYTES = 64 * 1024
MAX_INBOX_BYTES = 1024 * 1024
BODY_SECONDS = 10.0
# Headers worth showing; the rest (connection details) is noise for a person watching deliveries.
_SHOWN_HEADERS = ("content-type", "user-agent", "idempotency-key")
_MAX_HEADER_CHARS = 256
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Limits:
    per_inbox: int = MESSAGES_PER_INBOX
    max_inboxes: int = MAX_INBOXES
    body_bytes: int = MAX_BODY_BYTES
    inbox_bytes: int = MAX_INBOX_BYTES
    body_seconds: float = BODY_SECONDS


class InboxFull(Exception):
    """No room for another inbox (existing ones are never evicted to make room)."""


@dataclass(frozen=True)
class _Message:
    id: int
    received_at: str
    headers: dict[str, str]
    raw: bytes

    @property
    def size(self) -> int:
        return len(self.raw) + sum(len(key) + len(value) for key, value in self.headers.items())

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "receivedAt": self.received_at,
            "headers": self.headers,
            "body": _body(self.raw),
        }


class _Box:
    def __init__(self) -> None:
        self.messages: deque[_Message] = deque()
        self.size = 0


class Inbox:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._boxes: dict[str, _Box] = {}
        self._received = 0

    def add(self, name: str, headers: dict[str, str], raw: bytes) -> int:
        """Store a message; the inbox's own oldest messages make room. Raises ``InboxFull``."""
        box = self._boxes.get(name)
        if box is None:
            if len(self._boxes) >= self.limits.max_inboxes:
                raise InboxFull(
                    f"there are already {self.limits.max_inboxes} inboxes; delete one (DELETE /inbox/NAME)"
                )
            box = self._boxes[name] = _Box()
        self._received += 1
        message = _Message(self._received, datetime.now(UTC).isoformat().replace("+00:00", "Z"), headers, raw)
        box.messages.append(message)
        box.size += message.size
        while len(box.messages) > self.limits.per_inbox or box.size > self.limits.inbox_bytes:
            box.size -= box.messages.popleft().size
        return len(box.messages)

    def messages(self, name: str) -> list[dict[str, Any]]:
        box = self._boxes.get(name)
        return [message.to_json() for message in box.messages] if box else []

    def delete(self, name: str) -> bool:
        return self._boxes.pop(name, None) is not None

    def names(self) -> dict[str, int]:
        return {name: len(box.messages) for name, box in self._boxes.items()}

    @property
    def total_bytes(self) -> int:
        return sum(box.size for box in self._boxes.values())


def _body(raw: bytes) -> Any:
    """What a reader sees: the JSON value when the body is JSON (checked when it came in), else text."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _check_json(raw: bytes) -> str | None:
    """Why a JSON body is refused (too deeply nested), or None."""
    try:
        value = json.loads(raw)
    except RecursionError:
        return "the JSON body is nested too deeply"
    except ValueError:
        return None  # not JSON: kept as text
    try:
        check_document_shape(value, subject="body")
    except ValidationError as error:
        return "; ".join(issue.message for issue in error.issues)
    return None


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _read_body(request: Request, limits: Limits) -> bytes:
    """The body, read within the time and size limits (raises ``_Refused``)."""
    announced = request.headers.get("content-length")
    if announced is not None:
        if not announced.isdigit():
            raise _Refused(400, "Content-Length is not a number")
        if int(announced) > limits.body_bytes:
            raise _Refused(413, f"body larger than {limits.body_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.body_bytes:
                    raise _Refused(413, f"body larger than {limits.body_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise _Refused(408, f"the body did not arrive within {limits.body_seconds:g} seconds") from None
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    # The connection is closed after a refusal: its unread body must not be taken for the next request.
    return error_response(status, message, headers={"Connection": "close"})


def inbox_routes(inbox: Inbox, *, guarded: bool = True) -> APIRouter:
    """The inbox's routes; ``guarded=False`` leaves out access control (an app without tokens: the
    inbox's own tests and benchmark)."""
    router = APIRouter(prefix="/inbox", tags=["inbox"])
    readers = [Depends(requires(Role.VIEWER))] if guarded else []
    deleters = [Depends(requires(Role.DEPLOYER))] if guarded else []

    @router.get("", dependencies=readers)
    async def list_inboxes() -> dict[str, Any]:
        return {"inboxes": inbox.names()}

    async def receive(name: str, request: Request) -> JSONResponse:
        if not _NAME.match(name):
            return _error(400, "an inbox name is 1-64 letters, digits, '.', '_' or '-'")
        try:
            raw = await _read_body(request, inbox.limits)
        except _Refused as refused:
            return _error(refused.status, refused.message)
        if (problem := _check_json(raw)) is not None:
            return error_response(400, problem)
        headers = {
            key: value[:_MAX_HEADER_CHARS] for key, value in request.headers.items() if key in _SHOWN_HEADERS
        }
        try:
            count = inbox.add(name, headers, raw)
        except InboxFull as full:
            return error_response(429, str(full))
        return JSONResponse({"inbox": name, "stored": count})

    # With a token of any role (viewer is the least).
    router.add_api_route("/{name}", receive, methods=["POST"], dependencies=readers, summary="Post a message")

    if guarded:

        @router.post("/{key}/{name}", summary="Post a message with the inbox key (no token)")
        async def receive_with_key(key: str, name: str, request: Request) -> JSONResponse:
            if not hmac.compare_digest(key.encode(), inbox_key(request).encode()):
                return _error(401, "wrong inbox key: use the address releaseflow serve printed at start")
            return await receive(name, request)

    @router.get("/{name}", dependencies=readers)
    async def read(name: str) -> dict[str, Any]:
        return {"inbox": name, "messages": inbox.messages(name)}

    @router.delete("/{name}", dependencies=deleters)
    async def delete(name: str) -> JSONResponse:
        if not inbox.delete(name):
            return error_response(404, f"no inbox '{name}'")
        return JSONResponse({"inbox": name, "deleted": True})

    return router

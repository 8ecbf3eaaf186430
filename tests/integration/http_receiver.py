"""A real HTTP endpoint on loopback that records what Message nodes and notifications deliver to it."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from releaseflow.domain.notifications import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

# How long a held request waits for release() at most: a test never hangs on it.
HOLD_LIMIT_SECONDS = 30.0


class _Server(ThreadingHTTPServer):
    # The standard library's listen backlog is 5: a sender with more connections at once would see
    # some dropped and retried by TCP a second later. Real servers keep a longer queue.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A held request's sender may be gone (killed) when it is answered: nothing to report.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: Any
    raw: bytes = b""
    # What the receiver answered (None: it held the request until release(), answering only then).
    status: int | None = None
    # With a secret: whether the signature matched the body (a mismatch is answered 401).
    signed: bool | None = None
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Behaviour:
    """How the receiver answers, in arrival order: the first ``hold`` requests wait for ``release()``
    (their sender stays mid-delivery meanwhile) before they are answered; the ``fail`` requests after
    those are answered 500; the rest ``status``."""

    status: int = 200
    fail: int = 0
    hold: int = 0
    secret: str | None = None
    released: threading.Event = field(default_factory=threading.Event)


class Receiver:
    """Answers every POST as its behaviour says; ``deliveries`` keeps each request, in arrival order."""

    def __init__(self, status: int = 200, *, fail: int = 0, hold: int = 0, secret: str | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self.behaviour = Behaviour(status, fail, hold, secret)
        self.arrived = threading.Condition()
        deliveries, behaviour, arrived = self.deliveries, self.behaviour, self.arrived

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = dict(self.headers.items())
                signed = None
                if behaviour.secret is not None:
                    signed = verify(
                        behaviour.secret,
                        headers.get(TIMESTAMP_HEADER, ""),
                        raw,
                        headers.get(SIGNATURE_HEADER, ""),
                    )
                with arrived:
                    order = len(deliveries)
                    held = order < behaviour.hold
                    if signed is False:
                        status = 401
                    else:
                        status = (
                            500
                            if behaviour.hold <= order < behaviour.hold + behaviour.fail
                            else behaviour.status
                        )
                    answered = None if held else status
                    deliveries.append(Delivery(headers, json.loads(raw or b"null"), raw, answered, signed))
                    arrived.notify_all()
                if held:
                    behaviour.released.wait(HOLD_LIMIT_SECONDS)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"received")

            def log_message(self, *args: object) -> None:
                return None

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def bodies(self) -> list[Any]:
        return [delivery.body for delivery in self.deliveries]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Delivery]:
        """Block until ``count`` requests arrived (AssertionError after ``timeout`` seconds)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.deliveries) >= count, timeout):
                raise AssertionError(f"{len(self.deliveries)} request(s) arrived, not {count}, in {timeout}s")
            return list(self.deliveries)

    def release(self) -> None:
        self.behaviour.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

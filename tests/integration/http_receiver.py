"""A real HTTP endpoint on loopback that records what Message nodes deliver to it."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)  # when it arrived


class Receiver:
    """Answers every POST with ``status``; ``deliveries`` keeps each request, in arrival order.

    With ``hold``, each answer waits (up to a minute) until that event is set: the sender stays
    mid-delivery meanwhile."""

    def __init__(self, status: int = 200, hold: threading.Event | None = None) -> None:
        self.deliveries: list[Delivery] = []
        lock = threading.Lock()
        deliveries = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    deliveries.append(Delivery(dict(self.headers.items()), json.loads(raw or b"null")))
                if hold is not None:
                    hold.wait(timeout=60)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"received")

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def bodies(self) -> list[Any]:
        return [delivery.body for delivery in self.deliveries]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

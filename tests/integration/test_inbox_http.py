"""The webhook inbox over real HTTP (uvicorn on loopback): bounded, 4xx for what it refuses, never 500."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from releaseflow.api.inbox import Inbox, Limits, inbox_routes

LIMITS = Limits(per_inbox=100, max_inboxes=5, body_bytes=64 * 1024, inbox_bytes=256 * 1024, body_seconds=0.5)


@dataclass
class Server:
    host: str
    port: int
    inbox: Inbox

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def raw(self, request: bytes, *, wait: float = 5.0) -> tuple[bytes, float]:
        """Send ``request`` on a fresh connection; the whole answer (until the server closes) and the
        seconds it took. The server must close the connection itself: the read does not stop early."""
        began = time.monotonic()
        with socket.create_connection((self.host, self.port), timeout=wait) as connection:
            connection.sendall(request)
            received = b""
            while chunk := connection.recv(65536):
                received += chunk
        return received, time.monotonic() - began


@pytest.fixture
def server() -> Iterator[Server]:
    inbox = Inbox(LIMITS)
    app = FastAPI()
    app.include_router(inbox_routes(inbox, guarded=False))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not runner.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.started
    try:
        yield Server("127.0.0.1", listener.getsockname()[1], inbox)
    finally:
        runner.should_exit = True
        thread.join(timeout=10)
        listener.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_inbox__a_deeply_nested_body_is_refused_with_400(server: Server) -> None:
    deep = b"[" * 30_000 + b"]" * 30_000

    answer = httpx.post(
        f"{server.url}/inbox/deep", content=deep, headers={"Content-Type": "application/json"}
    )

    assert answer.status_code == 400 and "nest" in answer.json()["error"]["message"]
    assert server.inbox.names() == {}


def test_inbox__an_announced_oversized_body_is_refused_at_once(server: Server) -> None:
    request = b"POST /inbox/big HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n" + b"x" * 1000

    answer, seconds = server.raw(request)

    assert status_of(answer) == 413
    assert seconds < LIMITS.body_seconds  # answered and closed without waiting for the gigabyte


def test_inbox__a_body_that_grows_past_the_limit_unannounced_is_refused(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 16 * 1024

    answer = httpx.post(f"{server.url}/inbox/chunked", content=chunks())

    assert answer.status_code == 413
    assert server.inbox.names() == {}


def test_inbox__a_slow_body_times_out(server: Server) -> None:
    request = b"POST /inbox/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b'{"a": '

    answer, seconds = server.raw(request)

    assert status_of(answer) == 408
    assert LIMITS.body_seconds <= seconds < LIMITS.body_seconds + 3
    assert server.inbox.names() == {}


def test_inbox__new_inboxes_beyond_the_limit_are_refused_and_none_is_evicted(server: Server) -> None:
    for index in range(LIMITS.max_inboxes):
        assert httpx.post(f"{server.url}/inbox/box{index}", json={"n": index}).status_code == 200

    flood = [httpx.post(f"{server.url}/inbox/flood{index}", json={}).status_code for index in range(20)]

    assert set(flood) == {429}
    assert server.inbox.names() == {f"box{index}": 1 for index in range(LIMITS.max_inboxes)}
    assert httpx.get(f"{server.url}/inbox/box0").json()["messages"][0]["body"] == {"n": 0}
    assert httpx.delete(f"{server.url}/inbox/box0").status_code == 200
    assert httpx.post(f"{server.url}/inbox/flood0", json={}).status_code == 200


def test_inbox__bytes_held_stay_bounded_and_the_newest_messages_are_kept(server: Server) -> None:
    body = json.dumps({"items": ["x" * 60] * 900})  # about 57 KiB of many small values
    with httpx.Client() as client:
        for index in range(40):
            sent = client.post(f"{server.url}/inbox/box{index % 5}", content=f'{{"i": {index}, "b": {body}}}')
            assert sent.status_code == 200

    held = server.inbox.total_bytes
    messages = httpx.get(f"{server.url}/inbox/box4").json()["messages"]

    assert held <= LIMITS.max_inboxes * LIMITS.inbox_bytes
    kept = [message["body"]["i"] for message in messages]
    assert kept == list(range(39 - 5 * (len(kept) - 1), 40, 5))  # the newest, in order
    assert len(kept) == LIMITS.inbox_bytes // (len(body) + 100)  # as many as fit in the inbox's bytes
    assert messages[-1]["body"]["b"]["items"][0] == "x" * 60


def test_inbox__odd_names_and_bad_lengths_are_4xx(server: Server) -> None:
    assert httpx.post(f"{server.url}/inbox/{'n' * 65}", json={}).status_code == 400
    answer, _ = server.raw(b"POST /inbox/x HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n")
    assert 400 <= status_of(answer) < 500

"""``python -m tests.benchmarks.inbox_memory [INBOX_MODULE_FILE]``: what the webhook inbox costs in memory.

Serves the inbox routes with uvicorn on loopback (in this process), posts 200 JSON bodies of about
64 KiB made of many small values (the shape that costs most once parsed) to two inboxes, and prints how
much the process's resident memory grew. Give the path of another version of ``api/inbox.py`` (e.g.
``git show main:src/releaseflow/api/inbox.py > /tmp/old_inbox.py``) to measure that one instead.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import httpx
import uvicorn
from fastapi import FastAPI

MESSAGES = 200


def load(path: str | None) -> ModuleType:
    if path is None:
        from releaseflow.api import inbox

        return inbox
    spec = importlib.util.spec_from_file_location("inbox_under_test", Path(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main(argv: list[str]) -> None:
    module = load(argv[0] if argv else None)
    app = FastAPI()
    app.include_router(module.inbox_routes(module.Inbox(), guarded=False))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/inbox"
    body = json.dumps([{"k": index} for index in range(5000)])
    with httpx.Client() as client:
        client.post(f"{url}/warm-up", content=body)
        before = resident_bytes()
        for index in range(MESSAGES):
            client.post(f"{url}/box{index % 2}", content=body)
        grown = resident_bytes() - before
    server.should_exit = True
    print(f"{MESSAGES} messages of {len(body)} bytes: resident memory grew {grown / 2**20:.1f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])

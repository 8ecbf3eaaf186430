"""What the tests of the local driver share: a test service, git repositories, waiting."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The "service": answers GET with its version; ``delay`` seconds pass before it listens.
SERVER = """\
import http.server, os, time
VERSION = {version!r}
time.sleep({delay})

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{{VERSION}} {{os.environ.get('GREETING', '')}}".strip().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
print("serving", VERSION, flush=True)
server.serve_forever()
"""


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def commit(repo: Path, content: str, message: str) -> str:
    (repo / "app.txt").write_text(content)
    git(repo, "add", "app.txt")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


class Repo:
    """A throwaway repository: main has commits v1 and v2, feature branches off v1."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        git(path, "init", "-q", "-b", "main")
        self.v1 = commit(path, "v1", "first")
        self.v2 = commit(path, "v2", "second")
        git(path, "checkout", "-q", "-b", "feature", self.v1)
        self.feature = commit(path, "feature", "feature work")
        git(path, "checkout", "-q", "main")

    def commit_on_main(self, content: str) -> str:
        return commit(self.path, content, content)


def read(path: str | Path) -> str:
    return Path(path).read_text()


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait until ``check()`` (a plain or an async callable) is true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)

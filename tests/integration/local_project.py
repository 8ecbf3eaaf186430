"""A small real project for end-to-end tests of the local driver.

A git repository holds a web service (Python's standard library only) that answers its version, and
a migration script run with ``psql``; the configuration names the resources of Northflank's two
documented example release flows (builder, job-staging, deployment-staging, job-prod,
deployment-prod, postgres-prod) so those flows run unmodified.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

APP = """\
import http.server, os, pathlib

VERSION = pathlib.Path("VERSION").read_text().strip()
if VERSION == "broken":
    raise SystemExit("this version cannot start")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = VERSION.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

MIGRATION = """\
CREATE TABLE IF NOT EXISTS releases (version text PRIMARY KEY, migrated_at timestamptz DEFAULT now());
INSERT INTO releases (version) VALUES (:'version') ON CONFLICT DO NOTHING;
"""

GIT = ["git", "-c", "user.name=releaseflow", "-c", "user.email=releaseflow@example.invalid"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class AppRepository:
    """A git repository whose commits are versions of the app."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        subprocess.run([*GIT, "init", "-q", "-b", "main", str(path)], check=True)
        (path / "app.py").write_text(APP)
        (path / "migrate.sql").write_text(MIGRATION)

    def commit(self, version: str) -> str:
        (self.path / "VERSION").write_text(version + "\n")
        subprocess.run([*GIT, "-C", str(self.path), "add", "-A"], check=True)
        subprocess.run([*GIT, "-C", str(self.path), "commit", "-q", "-m", version], check=True)
        return subprocess.run(
            ["git", "-C", str(self.path), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()


def configuration(repository: Path, ports: dict[str, int]) -> dict[str, Any]:
    def service(port: int) -> dict[str, Any]:
        return {
            "runCommand": "python3 app.py",
            "port": port,
            "healthCheck": {"type": "http", "path": "/", "timeoutSeconds": 15},
        }

    migrate = {
        "command": 'psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -v version="$(cat VERSION)" -f migrate.sql'
    }
    return {
        "projects": [
            {
                "id": "shop",
                "resources": {
                    "buildServices": [
                        {
                            "id": "builder",
                            "spec": {
                                "repository": str(repository),
                                "buildCommand": "python3 -m py_compile app.py",
                            },
                        }
                    ],
                    "services": [
                        {"id": "deployment-staging", "spec": service(ports["staging"])},
                        {"id": "deployment-prod", "spec": service(ports["prod"])},
                    ],
                    "jobs": [{"id": "job-staging", "spec": migrate}, {"id": "job-prod", "spec": migrate}],
                    "addons": [{"id": "postgres-prod", "spec": {"type": "postgresql"}}],
                },
                "pipelines": [
                    {
                        "id": "main",
                        "name": "Main",
                        "stages": [
                            {"name": "Development", "resources": []},
                            {"name": "Staging", "resources": ["deployment-staging", "job-staging"]},
                            {
                                "name": "Production",
                                "resources": ["deployment-prod", "job-prod", "postgres-prod"],
                            },
                        ],
                    }
                ],
            }
        ]
    }


def build_main(ref: str = "build") -> dict[str, Any]:
    """A Build node of the head of main, awaited until it succeeded."""
    return {
        "kind": "Build",
        "ref": ref,
        "spec": {"id": "builder", "type": "service", "branch": "main"},
        "condition": "success",
    }


STAGING_FLOW: dict[str, Any] = {
    "apiVersion": "v1.2",
    "spec": {
        "kind": "Workflow",
        "spec": {
            "type": "sequential",
            "steps": [
                {
                    "kind": "Build",
                    "ref": "build",
                    "spec": {"id": "builder", "type": "service", "branch": "main"},
                    "condition": "success",
                },
                {
                    "kind": "Workflow",
                    "spec": {
                        "type": "parallel",
                        "steps": [
                            {
                                "kind": "Release",
                                "ref": "job",
                                "spec": {
                                    "type": "build",
                                    "origin": {
                                        "id": "builder",
                                        "branch": "main",
                                        "build": "${refs.build.id}",
                                    },
                                    "target": {"id": "job-staging", "type": "job"},
                                },
                            },
                            {
                                "kind": "Release",
                                "ref": "service",
                                "spec": {
                                    "type": "build",
                                    "origin": {
                                        "id": "builder",
                                        "branch": "main",
                                        "build": "${refs.build.id}",
                                    },
                                    "target": {"id": "deployment-staging", "type": "service"},
                                },
                                "condition": "running",
                                "timeoutDuration": 60,
                            },
                        ],
                    },
                },
            ],
        },
    },
}


def northflank_example(name: str) -> dict[str, Any]:
    path = Path(__file__).resolve().parents[1] / "fixtures" / "northflank" / f"{name}.json"
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def answer(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        return str(response.read().decode())


async def eventually_answers(port: int, expected: str, timeout: float = 30.0) -> str:
    """What the service answers once it answers ``expected`` (a deploy that nobody waited for)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            last = answer(port)
        except (urllib.error.URLError, ConnectionError) as error:
            last = repr(error)
        if last == expected:
            return last
        await asyncio.sleep(0.1)
    return last

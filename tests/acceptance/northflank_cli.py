"""Northflank's npm tools for the API tests, each installed once per machine in a folder of its own:
the CLI (``@northflank/cli``) and the JS client (``@northflank/js-client``).

``scripts/system-packages test`` installs them (npm) into ``CLI_FOLDER`` and ``JS_CLIENT_FOLDER``; the
tests install them there themselves when they are absent. The CLI keeps its login in
``$HOME/.northflank``, so every test gives it a home folder of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

CACHE = Path.home() / ".cache/releaseflow-tests"
PACKAGE = "@northflank/cli@0.9"
CLI_FOLDER = Path(os.environ.get("RELEASEFLOW_TEST_NORTHFLANK_CLI", CACHE / "northflank-cli"))
EXECUTABLE = CLI_FOLDER / "node_modules/.bin/northflank"
JS_CLIENT_PACKAGE = "@northflank/js-client@0.9"
JS_CLIENT_FOLDER = Path(
    os.environ.get("RELEASEFLOW_TEST_NORTHFLANK_JS_CLIENT", CACHE / "northflank-js-client")
)
# The script that drives the JS client (node resolves its require from NODE_PATH).
JS_CLIENT_SCRIPT = Path(__file__).with_name("northflank_js_client.cjs")


def npm_installed(package: str, folder: Path, marker: Path) -> Path:
    """``marker`` (a file of ``package``), installing the package into ``folder`` if it is absent."""
    if not marker.exists():
        npm = shutil.which("npm")
        assert npm, "npm is missing: run scripts/system-packages test (it installs nodejs and npm)"
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), package],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"npm could not install {package}:\n{result.stderr[-2000:]}"
    return marker


def installed_cli() -> Path:
    return npm_installed(PACKAGE, CLI_FOLDER, EXECUTABLE)


def run_js_client(url: str, tokens: dict[str, str], project: str) -> Any:
    """What ``northflank_js_client.cjs`` printed: each call of the JS client and its answer."""
    npm_installed(
        JS_CLIENT_PACKAGE, JS_CLIENT_FOLDER, JS_CLIENT_FOLDER / "node_modules/@northflank/js-client"
    )
    node = shutil.which("node")
    assert node, "node is missing: run scripts/system-packages test (it installs nodejs and npm)"
    env = {
        **os.environ,
        "NODE_PATH": str(JS_CLIENT_FOLDER / "node_modules"),
        "RELEASEFLOW_URL": url,
        "RELEASEFLOW_ADMIN_TOKEN": tokens["admin"],
        "RELEASEFLOW_VIEWER_TOKEN": tokens["viewer"],
        "RELEASEFLOW_PROJECT": project,
    }
    result = subprocess.run(
        [node, str(JS_CLIENT_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"the JS client script failed:\n{result.stdout}{result.stderr[-3000:]}"
    return json.loads(result.stdout)


class NorthflankCli:
    def __init__(self, home: Path) -> None:
        self.executable = installed_cli()
        self.home = home

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(self.home)}
        # stdin closed: the CLI must never wait for an answer it would otherwise prompt for.
        return subprocess.run(
            [str(self.executable), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    def json(self, *args: str) -> Any:
        result = self.run(*args, "-o", "json")
        assert result.returncode == 0, f"northflank {' '.join(args)}: {result.stdout}{result.stderr}"
        return json.loads(result.stdout)

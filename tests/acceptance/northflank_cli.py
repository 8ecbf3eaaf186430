"""Northflank's CLI (npm ``@northflank/cli``) for the API tests, installed once per machine.

``scripts/system-packages test`` installs it (npm) into ``CLI_FOLDER``; the tests install it there
themselves when it is absent. It keeps its login in ``$HOME/.northflank``, so every test gives it a
home folder of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

PACKAGE = "@northflank/cli@0.9"
CLI_FOLDER = Path(
    os.environ.get("RELEASEFLOW_TEST_NORTHFLANK_CLI", Path.home() / ".cache/releaseflow-tests/northflank-cli")
)
EXECUTABLE = CLI_FOLDER / "node_modules/.bin/northflank"


def installed_cli() -> Path:
    if not EXECUTABLE.exists():
        npm = shutil.which("npm")
        assert npm, "npm is missing: run scripts/system-packages test (it installs nodejs and npm)"
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(CLI_FOLDER), PACKAGE],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"npm could not install {PACKAGE}:\n{result.stderr[-2000:]}"
    return EXECUTABLE


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

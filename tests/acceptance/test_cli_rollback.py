"""Rollback from the command line, against a real server and the local driver: a person releases two
versions, looks at the preview, confirms, and sees the first version answer again, pinned."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from tests.acceptance.support import COMMAND, Releaseflow, free_port, started_run_id
from tests.integration.local_project import AppRepository, answer, build_main


def write_project(folder: Path, repository: Path, port: int, build_command: str = "true") -> Path:
    release = {
        "kind": "Release",
        "ref": "web",
        "spec": {
            "type": "build",
            "origin": {"id": "builder", "branch": "main", "build": "${refs.build.id}"},
            "target": {"id": "web", "type": "service"},
        },
        "condition": "running",
        "timeoutDuration": 60,
    }
    build = build_main()
    flow = {
        "apiVersion": "v1.2",
        "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": [build, release]}},
    }
    web = {"runCommand": "python3 app.py", "port": port, "healthCheck": {"type": "http", "path": "/"}}
    config = {
        "projects": [
            {
                "id": "shop",
                "resources": {
                    "buildServices": [
                        {
                            "id": "builder",
                            "spec": {"repository": str(repository), "buildCommand": build_command},
                        }
                    ],
                    "services": [{"id": "web", "spec": web}],
                },
                "pipelines": [
                    {
                        "id": "main",
                        "stages": [{"name": "Development", "resources": ["web"], "releaseFlow": flow}],
                    }
                ],
            }
        ]
    }
    path = folder / "releaseflow.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def applied_project(releaseflow: Releaseflow) -> tuple[AppRepository, int]:
    """A migrated installation with ``write_project``'s project applied: the app's repository and the
    port its web service answers on."""
    repository = AppRepository(releaseflow.cwd / "app")
    port = free_port()
    releaseflow.cli("db", "migrate", check=True)
    releaseflow.cli("apply", "-f", str(write_project(releaseflow.cwd, repository.path, port)), check=True)
    return repository, port


def without_terminal(releaseflow: Releaseflow, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        cwd=releaseflow.cwd,
        env=releaseflow.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_rollback__preview_confirmation_rollback_pin_and_unpin(releaseflow: Releaseflow) -> None:
    repository, port = applied_project(releaseflow)
    server = releaseflow.serve()
    try:
        runs = {}
        for version in ("v1", "v2"):
            repository.commit(version)
            started = releaseflow.cli(
                "run", "main", "Development", "--name", f"release {version}", "--follow", timeout=120
            )
            assert started.returncode == 0, started.stdout + started.stderr
            runs[version] = started_run_id(started.stdout)
        assert answer(port) == "v2"

        # Without a terminal and without --yes: the preview, then a refusal that says what to do.
        refused = without_terminal(releaseflow, "rollback", runs["v1"])
        assert refused.returncode == 1
        assert "web (service): build builder:" in refused.stdout
        assert "Database migrations" in refused.stdout and "not undone" in refused.stdout
        assert "confirm with --yes" in refused.stderr
        assert answer(port) == "v2"

        done = without_terminal(releaseflow, "rollback", runs["v1"], "--yes", "--follow", "--as", "dana")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "web: rolled back to build builder:" in done.stdout
        shown = releaseflow.cli(
            "show", done.stdout.split("started rollback run ")[1].split(":")[0], check=True
        )
        assert "where each target stands:" in shown.stdout and "web: rolled back to" in shown.stdout
        assert answer(port) == "v1"

        header = releaseflow.cli("pipelines", check=True).stdout
        assert "PINNED by dana" in header and "rolled back to run release v1" in header
        listed = json.loads(
            releaseflow.cli("runs", "main", "Development", "--kind", "rollback", "--json", check=True).stdout
        )
        assert [(run["origin"], run["rollbackOf"]) for run in listed] == [
            ({"kind": "rollback", "by": "dana"}, runs["v1"])
        ]
        assert listed[0]["id"][:8] in releaseflow.cli("rollbacks", runs["v1"], check=True).stdout
        paged = releaseflow.cli("runs", "main", "Development", "--limit", "1", check=True).stdout
        assert "older runs: add --before" in paged

        # Restoring a backup asks on its own, and only backups the stage's runs took are offered.
        asked = without_terminal(releaseflow, "restore-backup", "main", "Development", "db", "bk-1")
        assert asked.returncode == 1 and "confirm with --yes" in asked.stderr
        unknown = without_terminal(
            releaseflow, "restore-backup", "main", "Development", "db", "bk-1", "--yes"
        )
        assert unknown.returncode == 2 and "no backup 'bk-1' of addon 'db'" in unknown.stderr

        assert "pin cleared" in releaseflow.cli("unpin", "main", "Development", check=True).stdout
        status = releaseflow.cli("status", "main", check=True).stdout
        assert "not pinned" in status and "what runs where" in status
    finally:
        releaseflow.stop(server)

"""The chaos scenario's project: a chain of ten ``JobRun`` nodes whose job leaves one line per execution.

The job appends ``<run tag> <node ref>`` to a file and nothing else, so the file is what the platform
did, counted from the platform's side: a line seen twice is an effect done twice, a line absent is an
effect missing, whatever the engine's own records say. It is configured the way a user would: a git
repository, a build service and a job applied with ``releaseflow apply``; a first flow builds the
repository and releases the build to the job (a local job runs in the folder of its release), then
the stage's flow is replaced by the chain (``apply`` again, a new version of the flow).
"""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tests.acceptance.support import Releaseflow, started_run_id

PROJECT = PIPELINE = "chaos"
STAGE = "Development"
CHAIN_LENGTH = 10
NODE_REFS = tuple(f"n{index:02d}" for index in range(1, CHAIN_LENGTH + 1))
GIT = ["git", "-c", "user.name=releaseflow", "-c", "user.email=releaseflow@example.invalid"]


def _workflow(*steps: dict[str, Any], **options: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1.2",
        "options": options,
        "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": list(steps)}},
    }


SETUP_FLOW = _workflow(
    {
        "kind": "Build",
        "ref": "build",
        "spec": {"id": "builder", "type": "service", "branch": "main"},
        "condition": "success",
    },
    {
        "kind": "Release",
        "ref": "release",
        "spec": {
            "type": "build",
            "origin": {"id": "builder", "branch": "main", "build": "${refs.build.id}"},
            "target": {"id": "effect", "type": "job"},
        },
    },
)

# Every node runs the same job; RUN and NODE tell its one line apart. `condition: success` makes a
# node wait for its job to end, so a sequential chain really runs one job after the other.
CHAIN_FLOW = _workflow(
    *(
        {
            "kind": "JobRun",
            "ref": ref,
            "spec": {"jobId": "effect", "runtimeEnvironment": {"RUN": "${args.tag}", "NODE": ref}},
            "condition": "success",
        }
        for ref in NODE_REFS
    ),
    concurrencyPolicy="allow",
)
CHAIN_FLOW["arguments"] = {"tag": "unset"}


@dataclass(frozen=True)
class Effects:
    """The lines of the effects file against the lines the runs should have left, once each."""

    done: int  # lines in the file
    twice: dict[str, int]  # expected line -> times seen, when more than once
    missing: tuple[str, ...]  # expected lines never written
    unexpected: tuple[str, ...]  # lines no run of ours should have written

    @property
    def exact(self) -> bool:
        return not (self.twice or self.missing or self.unexpected)


class ChaosProject:
    """The project inside one installation, and the runs of its chain started so far."""

    def __init__(self, installation: Releaseflow) -> None:
        self.installation = installation
        self.folder = installation.cwd / "chaos"
        self.effects_file = self.folder / "effects.log"
        self.runs: dict[str, str] = {}  # run id -> tag

    def set_up(self) -> None:
        """Apply the project, run the setup flow (build, release to the job), then apply the chain."""
        repository = self.folder / "app"
        repository.mkdir(parents=True)
        subprocess.run([*GIT, "init", "-q", "-b", "main", str(repository)], check=True)
        (repository / "README").write_text("the job of the chaos scenario runs in a build of this\n")
        subprocess.run([*GIT, "-C", str(repository), "add", "-A"], check=True)
        subprocess.run([*GIT, "-C", str(repository), "commit", "-q", "-m", "v1"], check=True)
        self.effects_file.touch()
        self._apply(repository, SETUP_FLOW, "setup.yaml")
        setup = started_run_id(
            self.installation.cli("run", "--project", PROJECT, PIPELINE, STAGE, check=True).stdout
        )
        detail = self.installation.wait_for_run(setup, ("success", "failed", "aborted"), timeout=60)
        if detail["status"] != "success":
            raise AssertionError(f"the setup run ended {detail['status']}:\n{self.installation.logs()}")
        self._apply(repository, CHAIN_FLOW, "chain.yaml")

    def _apply(self, repository: Path, flow: dict[str, Any], name: str) -> None:
        job_command = 'echo "$RUN $NODE" >> "$EFFECTS"'
        config = {
            "projects": [
                {
                    "id": PROJECT,
                    "resources": {
                        "buildServices": [
                            {"id": "builder", "spec": {"repository": str(repository), "buildCommand": "true"}}
                        ],
                        "jobs": [
                            {
                                "id": "effect",
                                "spec": {"command": job_command, "env": {"EFFECTS": str(self.effects_file)}},
                            }
                        ],
                    },
                    "pipelines": [
                        {
                            "id": PIPELINE,
                            "stages": [{"name": STAGE, "resources": ["effect"], "releaseFlow": flow}],
                        }
                    ],
                }
            ]
        }
        path = self.folder / name
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.installation.cli("apply", "-f", str(path), check=True)

    def start_run(self) -> str:
        """Start one run of the chain (through the CLI, which works with or without a server)."""
        tag = f"r{len(self.runs) + 1:04d}"
        run_id = started_run_id(
            self.installation.cli(
                "run", "--project", PROJECT, PIPELINE, STAGE, "--arg", f"tag={tag}", check=True
            ).stdout
        )
        self.runs[run_id] = tag
        return run_id

    def effects(self) -> Effects:
        lines = Counter(self.effects_file.read_text(encoding="utf-8").splitlines())
        expected = {f"{tag} {ref}" for tag in self.runs.values() for ref in NODE_REFS}
        return Effects(
            done=sum(lines.values()),
            twice={line: count for line, count in sorted(lines.items()) if line in expected and count > 1},
            missing=tuple(sorted(expected - lines.keys())),
            unexpected=tuple(sorted(lines.keys() - expected)),
        )

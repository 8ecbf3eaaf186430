"""How long the command line takes to answer: ``--help`` and the read commands, against bare Python.

Each command runs as a person runs it (the installed ``releaseflow`` script, a fresh process) on a
SQLite data directory holding one applied configuration and a few runs; ``python -c pass`` runs in
the same loop, so the figures say what releaseflow adds to the interpreter on this machine, now.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.acceptance.config import write_config
from tests.acceptance.support import COMMAND, started_run_id

# The target for --help and the read commands, wall time of the whole process.
TARGET_MS = 300.0
BARE = "python -c pass"


@dataclass(frozen=True)
class CommandResult:
    command: str
    samples_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def max_ms(self) -> float:
        return max(self.samples_ms)

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms)


def bench_cli(repeat: int, progress: Callable[[str], None]) -> list[CommandResult]:
    """Every command ``repeat`` times, interleaved (one round runs each once), after one warm-up round."""
    with tempfile.TemporaryDirectory(prefix="releaseflow-cli-bench-") as directory:
        folder = Path(directory)
        env = {key: value for key, value in os.environ.items() if not key.startswith("RELEASEFLOW_")}
        env["RELEASEFLOW_DATA_DIR"] = str(folder / "data")
        # As on a person's machine: the warm-up round leaves compiled bytecode that later rounds use.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        run_id = _prepare(folder, env)
        commands: dict[str, list[str]] = {
            BARE: [sys.executable, "-c", "pass"],
            "releaseflow --help": [*COMMAND, "--help"],
            "releaseflow runs": [*COMMAND, "runs", "main", "Development"],
            "releaseflow show": [*COMMAND, "show", run_id],
            "releaseflow state": [*COMMAND, "state", "main"],
            "releaseflow flow": [*COMMAND, "flow", "main", "Development"],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        progress(f"cli: {len(commands)} commands, 1 warm-up + {repeat} rounds")
        for round_number in range(repeat + 1):
            for name, argv in commands.items():
                took = _time(argv, env, folder)
                if round_number:
                    samples[name].append(took)
    return [CommandResult(name, tuple(values)) for name, values in samples.items()]


def _prepare(folder: Path, env: dict[str, str]) -> str:
    config = write_config(folder, "http://127.0.0.1:9")
    _check([*COMMAND, "db", "migrate"], env, folder)
    _check([*COMMAND, "apply", "-f", str(config)], env, folder)
    # Runs wait for a worker that never comes: enough for the lists and the tree to show something.
    started = ""
    for name in ("first", "second", "third"):
        started = _check([*COMMAND, "run", "main", "Development", "--name", name], env, folder)
    return started_run_id(started)


def _check(argv: Sequence[str], env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def _time(argv: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    began = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, timeout=120)
    took = (time.perf_counter() - began) * 1000
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.decode()}")
    return took


def table(results: Sequence[CommandResult]) -> str:
    bare = next((result.median_ms for result in results if result.command == BARE), 0.0)
    rows = [("command", "median ms", "min ms", "max ms", "over bare python", f"target <= {TARGET_MS:.0f} ms")]
    for result in results:
        target = "" if result.command == BARE else ("met" if result.median_ms <= TARGET_MS else "MISSED")
        rows.append(
            (
                result.command,
                f"{result.median_ms:.0f}",
                f"{result.min_ms:.0f}",
                f"{result.max_ms:.0f}",
                "" if result.command == BARE else f"{result.median_ms - bare:+.0f}",
                target,
            )
        )
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def as_json(results: Sequence[CommandResult]) -> dict[str, Any]:
    return {
        "target_ms": TARGET_MS,
        "commands": [
            {
                "command": result.command,
                "median_ms": round(result.median_ms, 1),
                "min_ms": round(result.min_ms, 1),
                "max_ms": round(result.max_ms, 1),
                "samples_ms": [round(sample, 1) for sample in result.samples_ms],
            }
            for result in results
        ],
    }

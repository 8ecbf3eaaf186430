"""``make test`` is the whole suite everywhere: it installs what the suite needs, as CI does."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_test__installs_the_system_packages_before_running_the_suite() -> None:
    planned = subprocess.run(
        ["make", "-n", "--no-print-directory", "test"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()

    installs = planned.index("bash scripts/system-packages test")
    assert installs < planned.index("bash scripts/check")

"""``validate`` and ``apply`` on files that are not what they seem: one exit code, errors on stderr."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from releaseflow.cli.main import main


def fifo(folder: Path) -> Path:
    path = folder / "pipe.yaml"
    os.mkfifo(path)
    return path


def with_nul(folder: Path) -> Path:
    path = folder / "nul.yaml"
    path.write_bytes(b"projects:\n  - id: shop\n    name: Sh\x00p\n")
    return path


def with_escape(folder: Path) -> Path:
    path = folder / "escape.yaml"
    path.write_text('projects:\n  - id: shop\n    name: "Shop\\e[2J"\n', encoding="utf-8")
    return path


def escape_quoted_back(folder: Path) -> Path:
    path = folder / "quoted.yaml"
    path.write_text('projects:\n  - id: "sh\\e]0;owned\\aop"\n', encoding="utf-8")
    return path


def invalid(folder: Path) -> Path:
    path = folder / "invalid.yaml"
    path.write_text("projects:\n  - id: Not A Slug\n", encoding="utf-8")
    return path


def flow_file_fifo(folder: Path) -> Path:
    os.mkfifo(folder / "flow.yaml")
    path = folder / "shop.yaml"
    path.write_text(
        "projects:\n  - id: shop\n    pipelines:\n      - id: main\n        stages:\n"
        "          - name: Production\n            releaseFlowFile: flow.yaml\n",
        encoding="utf-8",
    )
    return path


def oversized(folder: Path) -> Path:
    path = folder / "big.yaml"
    path.write_bytes(b"#" * 1_000_001)
    return path


FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "endless device": (lambda folder: Path("/dev/zero"), "a character device, not a regular file"),
    "fifo": (fifo, "a FIFO (named pipe), not a regular file"),
    "release flow file is a fifo": (
        flow_file_fifo,
        "cannot read the file: a FIFO (named pipe), not a regular",
    ),
    "missing": (lambda folder: folder / "missing.yaml", "No such file or directory"),
    "oversized": (oversized, "larger than the limit of 1000000 bytes"),
    "NUL byte": (with_nul, "line 3, column 13: invalid YAML: character U+0000"),
    "escape in a name": (with_escape, "projects[0].name: must not contain control"),
    "escape quoted back in an error": (escape_quoted_back, "'sh\\x1b]0;owned\\x07op' is not a valid"),
    "invalid": (invalid, "projects[0].id: 'Not A Slug' is not a valid project id"),
}


@pytest.mark.parametrize("command", ["validate", "apply"])
@pytest.mark.parametrize("case", FILES.values(), ids=FILES.keys())
def test_file_commands__bad_files_exit_1_with_the_error_on_stderr(
    command: str,
    case: tuple[Callable[[Path], Path], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make, expected = case
    path = make(tmp_path)

    code = main(["--data-dir", str(tmp_path / "data"), command, "-f", str(path)])

    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.startswith("error: ") and expected in err
    assert "\x1b" not in err and "\x00" not in err
    assert not (tmp_path / "data").exists()  # nothing was created for a file that was refused

"""The repository's documentation stands on its own: its links lead somewhere that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
# [text](target): a relative target, without its #fragment.
LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)#\s]+)(?:#[^)]*)?\)")
# Files a reader of the repository does not have (they lived outside it while it was first built).
OUTSIDE = ("DESIGN.md", "northflank-compat.md")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_documentation__relative_links_resolve(document: Path) -> None:
    missing = [
        target for target in LINK.findall(document.read_text()) if not (document.parent / target).exists()
    ]

    assert missing == []


def test_documentation__nothing_refers_to_files_outside_the_repository() -> None:
    tracked = [ROOT / "README.md", ROOT / "pyproject.toml", *(ROOT / "docs").rglob("*.md")]
    tracked += [*(ROOT / "src").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
    this = Path(__file__).resolve()
    mentions = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in tracked
        if path != this
        for name in OUTSIDE
        if name in path.read_text(errors="replace")
    ]

    assert mentions == []


def test_documentation__architecture_is_there_and_linked_from_the_readme() -> None:
    assert (ROOT / "docs" / "architecture.md").is_file()
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()

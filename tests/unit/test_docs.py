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


def test_repository__no_unresolved_merge_conflict_markers() -> None:
    # A conflict marker once landed in README.md unnoticed: Markdown renders it as text, Python does not
    # parse it, but documents and YAML would carry it silently.
    marker = re.compile(r"^(<{7}|>{7})( |$)", re.MULTILINE)
    suffixes = {".md", ".py", ".toml", ".yaml", ".yml", ".sql", ".sh", ".json", ".cfg", ""}
    roots = [
        ROOT / "README.md",
        ROOT / "Makefile",
        *(ROOT / name for name in ("docs", "src", "tests", "scripts", ".ci")),
    ]
    files = [path for root in roots for path in ([root] if root.is_file() else root.rglob("*"))]
    marked = [
        str(path.relative_to(ROOT))
        for path in files
        if path.is_file() and path.suffix in suffixes and marker.search(path.read_text(errors="replace"))
    ]

    assert marked == []

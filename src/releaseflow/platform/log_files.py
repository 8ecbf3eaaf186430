"""Logs a driver keeps as files it appends to, read as numbered lines (``LogLines``): what following a
log asks for, so that new lines are told apart exactly from those already read.

Numbers are counted from the start of the file on every read (its newlines counted in 1 MiB blocks,
about 50 ms for 100 MB) rather than from a tail, which holds only the file's last part: the numbers
stay exact however long the log grows. A log only grows while it is followed; were it cut shorter,
the lines past a reader's position would come again once the log reaches it.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import BinaryIO

from releaseflow.platform.driver import LogLines

BLOCK = 1 << 20


def numbered_lines(path: Path, *, after: int | None, limit: int) -> LogLines:
    """The complete lines of the file at ``path``: at most ``limit`` past line ``after``, or without
    ``after`` its last ``limit``; a last line without its newline yet is left for a later read."""
    with path.open("rb") as file:
        total = sum(block.count(b"\n") for block in iter(partial(file.read, BLOCK), b""))
        skipped = max(0, total - limit) if after is None else after
        lines: list[str] = []
        if skipped < total:
            _seek_past_lines(file, skipped)
            # Only lines counted above: each of them was whole then, and the file is only appended to.
            for _ in range(min(limit, total - skipped)):
                raw = file.readline()
                if not raw.endswith(b"\n"):
                    break  # the file was cut meanwhile
                lines.append(raw[:-1].rstrip(b"\r").decode("utf-8", errors="replace"))
    return LogLines(first=skipped + 1, lines=lines, total=total)


def _seek_past_lines(file: BinaryIO, count: int) -> None:
    """Move to the start of line ``count + 1``."""
    file.seek(0)
    offset = 0
    while count > 0:
        block = file.read(BLOCK)
        if not block:
            return
        found = block.count(b"\n")
        if found < count:
            count -= found
            offset += len(block)
            continue
        rest = block.split(b"\n", count)[-1]
        file.seek(offset + len(block) - len(rest))
        return

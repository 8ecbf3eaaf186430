"""Logs a driver keeps as files it appends to, read as numbered lines (``LogLines``): what following a
log asks for, so that new lines are told apart exactly from those already read.

Numbers are counted from the start of the file on every read (its newlines counted in 1 MiB blocks,
about 50 ms for 100 MB, noting where each block begins, so that the lines asked for are then read
from their own block and not found by a second pass) rather than from a tail, which holds only the
file's last part: the numbers stay exact however long the log grows. A log only grows while it is
followed; were it cut shorter, a reader past its new end would miss the lines written until the log
is as long again.
"""

from __future__ import annotations

from bisect import bisect_right
from functools import partial
from pathlib import Path
from typing import BinaryIO

from releaseflow.platform.driver import LogLines

BLOCK = 1 << 20


def numbered_lines(path: Path, *, after: int | None, limit: int) -> LogLines:
    """The complete lines of the file at ``path``: at most ``limit`` past line ``after``, or without
    ``after`` its last ``limit``; a last line without its newline yet is left for a later read."""
    with path.open("rb") as file:
        # (offset, newlines before it) of each block: where to start reading a given line.
        blocks: list[tuple[int, int]] = []
        offset = total = 0
        for block in iter(partial(file.read, BLOCK), b""):
            blocks.append((offset, total))
            offset, total = offset + len(block), total + block.count(b"\n")
        skipped = max(0, total - limit if after is None else after)
        lines: list[str] = []
        if skipped < total:
            _seek_past_lines(file, blocks, skipped)
            # Only lines counted above: each of them was whole then, and the file is only appended to.
            for _ in range(min(limit, total - skipped)):
                raw = file.readline()
                if not raw.endswith(b"\n"):
                    break  # the file was cut meanwhile
                lines.append(raw[:-1].rstrip(b"\r").decode("utf-8", errors="replace"))
    return LogLines(first=skipped + 1, lines=lines, total=total)


def _seek_past_lines(file: BinaryIO, blocks: list[tuple[int, int]], count: int) -> None:
    """Move to the start of line ``count + 1``, from the block it begins in."""
    index = bisect_right([before for _, before in blocks], count) - 1
    offset, before = blocks[index]
    file.seek(offset)
    for _ in range(count - before):
        file.readline()

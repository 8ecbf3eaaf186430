"""Following a run live: redraw its tree in place on a terminal, or append status lines otherwise.

The view polls the database (the run may be worked on by another process) until the run ends.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from typing import TextIO

from releaseflow.cli import render
from releaseflow.domain.statuses import TERMINAL_RUN_STATUSES, NodeStatus, RunStatus
from releaseflow.engine.queries import RunDetail, run_detail
from releaseflow.store.database import Database

POLL_SECONDS = 0.3
_CLEAR_BELOW = "\x1b[J"


async def follow_run(
    db: Database, run_id: str, out: TextIO = sys.stdout, *, live: bool | None = None
) -> RunStatus:
    """Show the run until it ends; returns its final status."""
    view: _View = _LiveView(out) if (out.isatty() if live is None else live) else _LogView(out)
    while True:
        detail = await run_detail(db, run_id, with_events=False)
        view.show(detail)
        if detail.run.status in TERMINAL_RUN_STATUSES:
            view.finish(detail)
            return detail.run.status
        await asyncio.sleep(POLL_SECONDS)


class _View:
    def show(self, detail: RunDetail) -> None:
        raise NotImplementedError

    def finish(self, detail: RunDetail) -> None:
        raise NotImplementedError


class _LiveView(_View):
    """Redraws the header and tree in place with ANSI cursor movement."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.drawn: list[str] = []

    def show(self, detail: RunDetail) -> None:
        width = shutil.get_terminal_size().columns
        # Lines longer than the terminal would wrap and break the count of lines to move back over.
        lines = [
            _clip(line, width)
            for line in [*render.run_header(detail, True), "", *render.run_tree(detail, True)]
        ]
        if lines == self.drawn:
            return
        if self.drawn:
            self.out.write(f"\x1b[{len(self.drawn)}F{_CLEAR_BELOW}")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.drawn = lines

    def finish(self, detail: RunDetail) -> None:
        pass


class _LogView(_View):
    """Appends one line per change of the run or of a node, for logs and pipes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.seen: dict[str, str] = {}
        self.started = False

    def show(self, detail: RunDetail) -> None:
        if not self.started:
            self.started = True
            run = detail.run
            self._line(f"following run {run.id} ({run.project_id}/{run.pipeline_id}/{run.stage})")
        run_status = str(detail.run.status)
        if self.seen.get("") != run_status:
            self.seen[""] = run_status
            reason = f" ({detail.run.queued_reason})" if detail.run.queued_reason else ""
            self._line(f"run {run_status}{reason}  [{render.progress_text(detail)}]")
        for node in detail.root.walk() if detail.root else []:
            status = str(node.status)
            before = self.seen.get(node.path)
            self.seen[node.path] = status
            # Not having started yet is news only when it is not how a node begins.
            if before == status or (before is None and node.status is NodeStatus.PENDING):
                continue
            self._line(f"{render.node_title(node)}: {status}  [{render.progress_text(detail)}]")
            for note in render.node_notes(detail, node):
                self._line(f"  {note}")

    def finish(self, detail: RunDetail) -> None:
        if detail.run.error:
            for line in detail.run.error.splitlines():
                self._line(line)
        took = render.duration(detail.run.started_at, detail.run.concluded_at)
        self._line(f"run {detail.run.id} ended: {detail.run.status}" + (f" after {took}" if took else ""))

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def _clip(line: str, width: int) -> str:
    # Escape codes take no room on screen; count only what shows. Good enough: only colour codes occur.
    visible = 0
    result = []
    in_escape = False
    for char in line:
        if char == "\x1b":
            in_escape = True
        if not in_escape:
            if visible >= width - 1:
                break
            visible += 1
        elif char == "m":
            in_escape = False
        result.append(char)
    clipped = "".join(result)
    return clipped + "\x1b[0m" if clipped != line and "\x1b[" in line else clipped

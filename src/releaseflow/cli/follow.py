"""Following a run live: redraw its tree in place on a terminal, or append status lines otherwise.

The view reads the run again (from the database, or the server) each time its backend says it may have
changed: locally after a short pause (another process may be working on it), through a server when its
event stream sends the next event. It stops when the run ends.
"""

from __future__ import annotations

import shutil
import sys
from typing import TYPE_CHECKING, TextIO

from releaseflow.cli import render
from releaseflow.domain.statuses import (
    TERMINAL_NODE_STATUSES,
    TERMINAL_RUN_STATUSES,
    NodeStatus,
    RunStatus,
)

if TYPE_CHECKING:
    from releaseflow.cli.backend import Backend
    from releaseflow.engine.queries import EventView, RunDetail

_CLEAR_BELOW = "\x1b[J"


async def follow_run(
    backend: Backend, run_id: str, out: TextIO = sys.stdout, *, live: bool | None = None
) -> RunStatus:
    """Show the run until it ends; returns its final status."""
    view: _View = _LiveView(out) if (out.isatty() if live is None else live) else _LogView(out)
    while True:
        detail = await backend.run_detail(run_id, with_events=view.needs_events)
        view.show(detail)
        if detail.run.status in TERMINAL_RUN_STATUSES:
            view.finish(detail)
            return detail.run.status
        await backend.wait_for_change(run_id, detail.events[-1].id if detail.events else 0)


class _View:
    needs_events = False

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def show(self, detail: RunDetail) -> None:
        raise NotImplementedError

    def finish(self, detail: RunDetail) -> None:
        """The run's conclusion, last: its error (or its first failed node's), and how it ended."""
        error = detail.run.error or (
            render.first_error(detail) if detail.run.status is RunStatus.FAILED else None
        )
        for line in (error or "").splitlines():
            self._line(line)
        took = render.duration(detail.run.started_at, detail.run.concluded_at)
        self._line(
            f"run {detail.run.id} ended: {detail.run.status}  [{render.progress_text(detail)}]"
            + (f" after {took}" if took else "")
        )

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


class _LiveView(_View):
    """Redraws the header and tree in place with ANSI cursor movement."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
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


class _LogView(_View):
    """Appends one line per event of the run, in the order the events happened (for logs and pipes).

    The counts on each line are those of that moment: the event log is replayed, so "2/5 nodes done"
    is what was true when the line's event happened, not what the last poll saw.
    """

    needs_events = True

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self.last_event = 0
        self.statuses: dict[str, str] = {}
        self.started = False

    def show(self, detail: RunDetail) -> None:
        if not self.started:
            self.started = True
            run = detail.run
            self._line(f"following run {run.id} ({run.project_id}/{run.pipeline_id}/{run.stage})")
        actions = {node.path for node in detail.root.walk() if not node.is_workflow} if detail.root else set()
        latest = {event.node_path: event.id for event in detail.events if event.node_path}
        for event in detail.events:
            if event.id <= self.last_event:
                continue
            if event.node_path is None and event.to_status in TERMINAL_RUN_STATUSES:
                # The run's conclusion is printed last, by finish(), after every node's events.
                continue
            self.last_event = event.id
            self._event(detail, event, actions, latest)

    def _event(self, detail: RunDetail, event: EventView, actions: set[str], latest: dict[str, int]) -> None:
        if event.node_path is None:
            reason = f" ({detail.run.queued_reason})" if event.to_status == RunStatus.QUEUED else ""
            if event.from_status is not None:
                self._line(f"run {event.to_status}{reason}")
            return
        self.statuses[event.node_path] = event.to_status
        done = sum(1 for path in actions if self.statuses.get(path) in TERMINAL_NODE_STATUSES)
        title = render.subject(detail, event.node_path)
        self._line(f"{title}: {event.to_status}  [{done}/{len(actions)} nodes done]")
        node = detail.node(event.node_path)
        if node is not None and latest.get(event.node_path) == event.id:
            # What the node shows now (its error, its response data) belongs to its latest event.
            for note in render.node_notes(detail, node):
                for line in note.splitlines():
                    self._line(f"  {line}")
        elif event.to_status in (NodeStatus.FAILED, NodeStatus.RETRYING):
            self._line(f"  {event.cause}")


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

"""Text for people: tables, run trees, times and statuses (colour only when asked for)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.domain.text import escape_text

if TYPE_CHECKING:
    from releaseflow.engine.queries import NodeView, RunDetail, RunSummary

SHORT_ID = 8

_SYMBOLS = {
    "pending": "·",
    "queued": "·",
    "running": "▶",
    "waiting": "…",
    "retrying": "↻",
    "success": "✓",
    "failed": "✗",
    "skipped": "-",
    "aborting": "■",
    "aborted": "■",
}
_COLOURS = {
    "running": "36",  # cyan
    "waiting": "33",  # yellow
    "retrying": "33",
    "success": "32",  # green
    "failed": "31",  # red
    "aborting": "35",  # magenta
    "aborted": "35",
    "skipped": "2",  # dim
    "pending": "2",
    "queued": "2",
}


def untrusted(text: object, *, multiline: bool = False) -> str:
    """Text a person or a platform supplied (names, descriptions, argument values, error messages that
    quote input) made safe to print: control characters, terminal escape sequences and bidirectional
    overrides are written as visible escapes (``\\x1b``), so nothing reaches the terminal raw. Every
    line the CLI prints that holds such text goes through here. ``multiline`` keeps line feeds."""
    return escape_text(str(text), keep_newlines=multiline)


def short_id(run_id: str) -> str:
    return run_id[:SHORT_ID]


def run_label(run_id: str, display_name: str) -> str:
    """A run's short id, and its name in quotes when it has one (an unnamed run's name is its id)."""
    name = f" “{untrusted(display_name)}”" if display_name != run_id else ""
    return short_id(run_id) + name


def paint(status: str, text: str, colour: bool) -> str:
    code = _COLOURS.get(status)
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def status_text(status: NodeStatus | RunStatus, colour: bool = False) -> str:
    return paint(str(status), f"{_SYMBOLS.get(str(status), '?')} {status}", colour)


def clock(moment: datetime | None) -> str:
    """A time of day in the local zone (the date too when it is not today)."""
    if moment is None:
        return "-"
    local = moment.astimezone()
    if local.date() == datetime.now(UTC).astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


def moment(at: datetime | None) -> str:
    """A date and time in the local zone, for lists that span days."""
    return "-" if at is None else at.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(start: datetime | None, end: datetime | None, now: datetime | None = None) -> str:
    if start is None:
        return ""
    seconds = max(((end or now or datetime.now(UTC)) - start).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    rows = [[untrusted(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = []
    for row in [list(headers), *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return lines


def runs_table(runs: Sequence[RunSummary], first_errors: Mapping[str, str] | None = None) -> list[str]:
    """One line per run; ``first_errors`` gives the first error of failed runs whose run has none."""
    rows = []
    for run in runs:
        name = run.display_name
        if run.queued_reason and run.status is RunStatus.QUEUED:
            name = f"{name} (queued: {run.queued_reason})"
        error = run.error or (first_errors or {}).get(run.id) or ""
        rows.append(
            [
                short_id(run.id),
                name,
                str(run.status),
                run.kind,
                moment(run.started_at),
                untrusted(origin_text(run)),
                moment(run.concluded_at),
                duration(run.started_at, run.concluded_at),
                first_line(error),
            ]
        )
    return table(["ID", "NAME", "STATUS", "KIND", "STARTED", "BY", "COMPLETED", "DURATION", "ERROR"], rows)


def origin_text(run: RunSummary) -> str:
    """By what a run was started: "person alice", "git push main", "rollback by bob to 1a2b3c4d"."""
    if run.origin_kind == "rollback":
        by = f" by {run.origin_by}" if run.origin_by else ""
        return f"rollback{by} to {short_id(run.rollback_of or '')}"
    from releaseflow.domain.run_origin import RunOrigin

    return RunOrigin.parse(run.origin_kind, run.origin_by).label()


def first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] + (" …" if len(lines) > 1 else "") if lines else ""


def first_error(detail: RunDetail) -> str | None:
    """The error of the node that failed first (the cause of a failed run, when the run has none)."""
    failed = [
        node
        for node in (detail.root.walk() if detail.root else [])
        if not node.is_workflow and node.error and node.status is NodeStatus.FAILED
    ]
    if not failed:
        return None
    node = min(failed, key=lambda item: item.ended_at or datetime.max.replace(tzinfo=UTC))
    return f"{node.label}: {node.error.get('message') if node.error else ''}"


def run_header(detail: RunDetail, colour: bool = False) -> list[str]:
    run = detail.run
    title = f"run {run.id}"
    if run.name:
        title += f"  “{untrusted(run.name)}”"
    lines = [
        f"{title}  {status_text(run.status, colour)}",
        f"  {run.project_id}/{run.pipeline_id}/{run.stage} · {run.kind} #{run.seq} · release flow version "
        f"{run.flow_version} · started by {untrusted(origin_text(run))}",
        f"  created {clock(run.created_at)} · started {clock(run.started_at)}"
        f" · concluded {clock(run.concluded_at)}"
        + (f" · took {duration(run.started_at, run.concluded_at)}" if run.started_at else ""),
    ]
    if run.description:
        lines.append(f"  {untrusted(run.description)}")
    if run.resumed_from:
        lines.append(f"  resumes failed run {run.resumed_from} (nodes that succeeded there are carried over)")
    if run.queued_reason:
        lines.append(f"  queued: {untrusted(run.queued_reason)}")
    if detail.arguments:
        pairs = ", ".join(f"{key}={value}" for key, value in detail.arguments.items())
        lines.append("  arguments: " + untrusted(pairs))
    lines.append(f"  {progress_text(detail)}")
    if run.error:
        lines.extend("  " + line for line in untrusted(run.error, multiline=True).split("\n"))
    return lines


def progress_text(detail: RunDetail) -> str:
    return f"{detail.progress.done}/{detail.progress.total} nodes done"


def run_tree(detail: RunDetail, colour: bool = False) -> list[str]:
    if detail.root is None:
        return ["(no nodes: the run ended before any node was created)"]
    lines: list[str] = []
    _tree_lines(detail, detail.root, "", "", lines, colour)
    return lines


def _tree_lines(
    detail: RunDetail, node: NodeView, lead: str, child_lead: str, out: list[str], colour: bool
) -> None:
    out.append(f"{lead}{status_text(node.status, colour)}  {node_title(node)}{_node_facts(node)}")
    indent = f"{child_lead}{'│ ' if node.children else '  '}  "
    for note in node_notes(detail, node):
        first, *rest = note.splitlines() or [""]
        out.append(f"{indent}{first}")
        # A multi-line note (an error with a log excerpt) stays inside the tree's indentation.
        out.extend(f"{indent}  {line}" for line in rest)
    for index, child in enumerate(node.children):
        last = index == len(node.children) - 1
        _tree_lines(
            detail,
            child,
            child_lead + ("└─ " if last else "├─ "),
            child_lead + ("   " if last else "│  "),
            out,
            colour,
        )


def node_title(node: NodeView) -> str:
    """How the template names a node: its ref, else its workflow type or kind (never its path)."""
    if node.is_workflow:
        return f"{node.workflow_type} workflow" + (f" {untrusted(node.ref)}" if node.ref else "")
    return f"{untrusted(node.label)} ({node.kind})"


def subject(detail: RunDetail, path: str | None) -> str:
    """What an event is about, in the template's words: the run, or a node's title."""
    if path is None:
        return "run"
    node = detail.node(path)
    return node_title(node) if node else path


def data_lines(data: Any) -> list[str]:
    """A node's response data, one ``key: value`` line per field (nested values as compact JSON)."""
    if data is None or data == {}:
        return []
    if not isinstance(data, Mapping):
        return [f"data: {_value(data)}"]
    return [f"{key}: {_value(value)}" for key, value in data.items()]


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def _node_facts(node: NodeView) -> str:
    facts = []
    if node.started_at:
        facts.append(f"{clock(node.started_at)} {duration(node.started_at, node.ended_at)}")
    if not node.is_workflow and node.attempts:
        facts.append(f"attempt {node.attempts}/{node.max_attempts}")
    if node.carried_from:
        facts.append(f"carried over from run {short_id(node.carried_from)}")
    return "  " + " · ".join(facts) if facts else ""


def node_notes(detail: RunDetail, node: NodeView) -> list[str]:
    """Lines under a node: why it is as it is, and what a person can do about it."""
    notes = []
    if node.status is NodeStatus.RETRYING and node.next_attempt:
        notes.append(f"next attempt at {clock(node.next_attempt)}")
    if node.error and node.status in (NodeStatus.FAILED, NodeStatus.RETRYING):
        notes.append(f"error: {untrusted(node.error.get('message'), multiline=True)}")
    elif node.status in (NodeStatus.SKIPPED, NodeStatus.ABORTED) and node.cause:
        notes.append(untrusted(node.cause))
    if not node.is_workflow and not (node.kind == "Approval" and node.status is NodeStatus.WAITING):
        notes.extend(untrusted(line, multiline=True) for line in data_lines(node.data))
    if node.kind == "Approval" and node.status is NodeStatus.WAITING:
        data = node.data if isinstance(node.data, dict) else {}
        given = len(data.get("approvals", []))
        notes.append(
            f"awaiting approval ({given}/{data.get('required', 1)}): "
            f"releaseflow approve {short_id(detail.run.id)} {node.ref or node.path} --as NAME"
        )
    return notes


def error_lines(message: str) -> list[str]:
    first, *rest = untrusted(message, multiline=True).rstrip("\n").split("\n")
    return [f"error: {first}", *rest]

"""What the pages need beyond the engine's answers: form parsing, grouping, and the words and icons
of statuses (each status has its own colour, icon and word: never colour alone)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.datastructures import FormData

from releaseflow.application import Application
from releaseflow.domain.access import PrincipalKind, Role
from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.overrides import parse_release_spec
from releaseflow.domain.run_origin import OriginKind, RunOrigin
from releaseflow.engine.commands import RunRequest
from releaseflow.engine.queries import NodeView, ReleaseView, RunDetail
from releaseflow.engine.tokens import Principal
from releaseflow.store import catalog
from releaseflow.store.database import Database


@dataclass(frozen=True)
class RunContext:
    """A run a request may see: the application, who asks, and the run."""

    core: Application
    who: Principal
    detail: RunDetail


# The icon beside each status word (the colour comes from the style sheet's .status-<name>).
STATUS_ICONS: Mapping[str, str] = {
    "queued": "⋯",
    "pending": "○",
    "running": "▶",
    "waiting": "‖",
    "retrying": "↻",
    "success": "✓",
    "failed": "✗",
    "skipped": "↷",
    "aborted": "■",
}


@dataclass(frozen=True)
class StageResource:
    """A service, job or addon of a stage, and what it runs (None: nothing deployed, or an addon)."""

    id: str
    kind: str
    release: ReleaseView | None


async def stage_resources(
    db: Database, project_id: str, pipeline_id: str, stages: Sequence[str], state: Sequence[ReleaseView]
) -> dict[str, list[StageResource]]:
    """Per stage, its resources with their release state; a deployed resource the stage no longer
    lists still shows (what it runs is still true)."""
    columns: dict[str, list[StageResource]] = {}
    async with db.read() as tx:
        for stage in stages:
            releases = {view.resource_id: view for view in state if view.stage == stage}
            listed = await catalog.stage_resources(tx, project_id, pipeline_id, stage)
            column = [StageResource(row["id"], row["kind"], releases.pop(row["id"], None)) for row in listed]
            column += [StageResource(view.resource_id, "deployed", view) for view in releases.values()]
            columns[stage] = column
    return columns


def local_path(path: str) -> str:
    """Where to go after signing in: a path of this interface only (never another site)."""
    return path if path.startswith("/web/") and not path.startswith("//") else "/web/"


def event_id(header: str | None, query: str | None) -> int:
    for value in (header, query):
        if value and value.isdigit():
            return int(value)
    return 0


def duration(start: datetime | None, end: datetime | None, now: datetime | None = None) -> str:
    if start is None:
        return ""
    seconds = ((end or now or datetime.now(start.tzinfo)) - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def span(length: timedelta | None) -> str:
    """A length of time as ``duration`` writes it; "unknown" for none."""
    if length is None:
        return "unknown"
    start = datetime(2000, 1, 1, tzinfo=UTC)
    return duration(start, start + length)


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, sort_keys=True)


def artifact(value: Mapping[str, Any] | None) -> str:
    """One line naming an artifact: its build, image or commit."""
    if not value:
        return "nothing"
    for key in ("buildId", "imagePath", "image", "sha", "branch"):
        if value.get(key):
            return f"{key} {value[key]}"
    return pretty(value)


def lanes(node: NodeView) -> str:
    """How a workflow draws its steps: parallel ones stack as lanes, sequential ones make a row."""
    return "lanes" if node.workflow_type == "parallel" else "row"


def origin_of(who: Principal) -> RunOrigin:
    """The origin of a run started from the browser: the signed-in user, or the token signed in (as the
    API records it, so that the token cannot approve the run wherever it signs in)."""
    kind = OriginKind.PERSON if who.kind is PrincipalKind.USER else OriginKind.TOKEN
    return RunOrigin(kind, who.name)


def run_request_of(form: FormData, origin: RunOrigin) -> RunRequest:
    """The run a dialog's form asks for: name, description, ``arg.K`` fields, per release target a
    JSON override (``release.TARGET``); a malformed value is named in a ValidationError."""
    issues: list[Issue] = []
    arguments: dict[str, Any] = {}
    releases: dict[str, Any] = {}
    for key, raw in form.multi_items():
        value = str(raw).strip()
        if key.startswith("arg.") and key[4:]:
            arguments[key[4:]] = value
        elif key.startswith("release.") and value:
            spec = parse_release_spec(value, key, issues)
            if spec is not None:
                releases[key[8:]] = spec
    for extra in str(form.get("args", "")).splitlines():
        name, equals, value = extra.partition("=")
        if not extra.strip():
            continue
        if not equals or not name.strip():
            issues.append(Issue("args", f"expected NAME=VALUE per line, got {extra!r}"))
        else:
            arguments[name.strip()] = value.strip()
    if issues:
        raise ValidationError(issues, subject="run dialog")
    return RunRequest(
        name=str(form.get("name", "")).strip() or None,
        description=str(form.get("description", "")).strip(),
        arguments=arguments,
        release_node_overrides=releases,
        origin=origin,
    )


def may(who: Principal, role: str, project_id: str) -> bool:
    """Whether ``who`` holds ``role`` in the project: pages offer only the actions it may take."""
    return who.allows(Role(role), project_id)


TEMPLATE_HELPERS: Mapping[str, Any] = {
    "may": may,
    "status_icon": lambda status: STATUS_ICONS.get(str(status), "?"),
    "duration": duration,
    "when": when,
    "span": span,
    "pretty": pretty,
    "artifact": artifact,
    "lanes": lanes,
}

"""Triggers: a git push, a pull request or a webhook call starts a run, or says why it did not.

Every request is decided here and written to the trigger log of the flow it concerns: **started** (a
run was created; it may wait in the queue), **skipped** (the flow is paused, the stage pinned, or the
event does not match the trigger's rules) or **refused** (the concurrency policy forbids another run,
or the request is invalid). Runs start through ``Engine.start_run`` with origin git or webhook, so the
pin (``pins.admit_origin``), the pause and the concurrency policy are decided there, in one place.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from releaseflow.domain.errors import ConflictError, NotFoundError, ValidationError
from releaseflow.domain.git_rules import (
    GitEvent,
    event_refs,
    match_trigger,
    parse_webhook_parameters,
    watches,
)
from releaseflow.domain.run_origin import OriginKind, RunOrigin
from releaseflow.domain.template import Template
from releaseflow.domain.template_parser import parse_template
from releaseflow.engine.commands import Engine, PausedError, RunRequest
from releaseflow.engine.pins import PinnedError, stage_flow
from releaseflow.store import catalog
from releaseflow.store import triggers as trigger_store
from releaseflow.store.records import FlowRecord

WEBHOOK_PATH = "/hooks/release-flows/"
LOG_LIMIT = 20


class Decision(StrEnum):
    # A run was created for the request (it may be queued behind others).
    STARTED = "started"
    # Nothing was started on purpose: paused flow, pinned stage, or rules that do not match.
    SKIPPED = "skipped"
    # The request could not start a run: the concurrency policy forbids it, or it is invalid.
    REFUSED = "refused"


@dataclass(frozen=True)
class Outcome:
    """What became of one request for one flow."""

    stage: str  # "project/pipeline/stage"
    decision: Decision
    reason: str
    run_id: str | None = None
    invalid: bool = False  # refused because the request itself is wrong (HTTP 400, not 409)


@dataclass(frozen=True)
class LogEntry:
    at: datetime
    source: str
    request: str
    decision: str
    reason: str
    run_id: str | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def webhook_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + WEBHOOK_PATH + token


def _stage_name(flow: FlowRecord) -> str:
    return f"{flow.project_id}/{flow.pipeline_id}/{flow.stage}"


class Triggers:
    """Decides trigger requests and keeps their log; one per process, over the process's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def _template(self, flow: FlowRecord) -> Template:
        async with self.engine.db.transaction() as tx:
            version = await catalog.get_flow_version(tx, flow.id, flow.current_version)
        assert version is not None
        return parse_template(version["document"])

    async def _start(self, flow: FlowRecord, request: RunRequest, source: str, asked: str) -> Outcome:
        """Start a run of the flow through the engine and log what came of it."""
        try:
            run = await self.engine.start_run(flow.project_id, flow.pipeline_id, flow.stage, request)
        except (PausedError, PinnedError) as error:
            outcome = Outcome(_stage_name(flow), Decision.SKIPPED, str(error))
        except ConflictError as error:
            outcome = Outcome(_stage_name(flow), Decision.REFUSED, str(error))
        except ValidationError as error:
            outcome = Outcome(_stage_name(flow), Decision.REFUSED, str(error), invalid=True)
        else:
            reason = f"run {run.display_name} created ({run.status}"
            reason += f": {run.waiting_reason})" if run.waiting_reason else ")"
            outcome = Outcome(_stage_name(flow), Decision.STARTED, reason, run.id)
        await self._log(flow, source, asked, outcome)
        return outcome

    async def _log(self, flow: FlowRecord, source: str, asked: str, outcome: Outcome) -> None:
        async with self.engine.db.transaction() as tx:
            await trigger_store.log_request(
                tx,
                flow.id,
                source=source,
                request=asked,
                decision=str(outcome.decision),
                reason=outcome.reason,
                run_id=outcome.run_id,
                at=self.engine.clock.now(),
            )

    # Webhooks ------------------------------------------------------------------------------------

    async def fire_webhook(self, token: str, parameters: Sequence[tuple[str, str]], caller: str) -> Outcome:
        """Start a run of the flow whose webhook token this is; NotFoundError for an unknown token."""
        async with self.engine.db.transaction() as tx:
            found = await trigger_store.flow_by_token_hash(tx, hash_token(token))
        if found is None or not hmac.compare_digest(found[1].encode(), token.encode()):
            raise NotFoundError("no release flow has this webhook URL (it may have been rotated)")
        flow = found[0]
        template = await self._template(flow)
        asked = "webhook " + (" ".join(f"{key}={value}" for key, value in parameters) or "(no parameters)")
        trigger_refs = [str(t["ref"]) for t in template.triggers if isinstance(t.get("ref"), str)]
        parsed, issues = parse_webhook_parameters(parameters, trigger_refs)
        if issues:
            outcome = Outcome(_stage_name(flow), Decision.REFUSED, str(ValidationError(issues)), invalid=True)
            await self._log(flow, "webhook", asked, outcome)
            return outcome
        request = RunRequest(
            name=parsed.name,
            description=parsed.description,
            arguments=parsed.arguments,
            trigger_refs=parsed.refs,
            origin=RunOrigin(OriginKind.WEBHOOK, caller),
        )
        return await self._start(flow, request, "webhook", asked)

    async def rotate_webhook(self, project_id: str, pipeline_id: str, stage: str) -> str:
        """Give the stage's flow a new webhook token (the old URL stops working); returns it."""
        token = secrets.token_urlsafe(32)
        async with self.engine.db.transaction() as tx:
            flow = await stage_flow(tx, project_id, pipeline_id, stage)
            await trigger_store.set_webhook_token(
                tx, flow.id, token, hash_token(token), self.engine.clock.now()
            )
        return token

    async def webhook_token(self, project_id: str, pipeline_id: str, stage: str) -> str | None:
        async with self.engine.db.transaction() as tx:
            flow = await stage_flow(tx, project_id, pipeline_id, stage)
            return await trigger_store.webhook_token(tx, flow.id)

    async def log(
        self, project_id: str, pipeline_id: str, stage: str, limit: int = LOG_LIMIT
    ) -> list[LogEntry]:
        """The stage's trigger log, newest first."""
        async with self.engine.db.transaction() as tx:
            flow = await stage_flow(tx, project_id, pipeline_id, stage)
            rows = await trigger_store.trigger_log(tx, flow.id, limit)
        return [
            LogEntry(row["at"], row["source"], row["request"], row["decision"], row["reason"], row["run_id"])
            for row in rows
        ]

    # Git events ----------------------------------------------------------------------------------

    async def accept_delivery(self, provider: str, delivery_id: str) -> bool:
        """Remember a GitHub or GitLab delivery id; False when it came before (a replay)."""
        async with self.engine.db.transaction() as tx:
            return await trigger_store.accept_delivery(tx, provider, delivery_id, self.engine.clock.now())

    async def on_git_event(self, event: GitEvent, source: str) -> list[Outcome]:
        """Decide the event for every live flow with a git trigger on its repository."""
        async with self.engine.db.transaction() as tx:
            flows = await trigger_store.live_flows(tx)
        outcomes = []
        for flow in flows:
            template = await self._template(flow)
            outcome = await self._git_event_for_flow(flow, template.triggers, event, source)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    async def _git_event_for_flow(
        self, flow: FlowRecord, triggers: Iterable[Mapping[str, Any]], event: GitEvent, source: str
    ) -> Outcome | None:
        """The first of the flow's triggers that the event matches starts one run; when none does,
        the log says why the first trigger on that repository did not."""
        mismatch: Outcome | None = None
        for trigger in triggers:
            if not watches(trigger, event):
                continue
            match = match_trigger(trigger, event)
            if match.starts:
                request = RunRequest(
                    trigger_refs={str(trigger["ref"]): event_refs(trigger, event)},
                    origin=RunOrigin(OriginKind.GIT, f"{event.branch}@{event.sha[:7]}"),
                )
                return await self._start(flow, request, source, event.describe())
            mismatch = mismatch or Outcome(_stage_name(flow), Decision.SKIPPED, match.reason)
        if mismatch is not None:
            await self._log(flow, source, event.describe(), mismatch)
        return mismatch

    async def local_repositories(self) -> set[str]:
        """The repositories of git triggers that are paths on this host (watched by polling)."""
        async with self.engine.db.transaction() as tx:
            flows = await trigger_store.live_flows(tx)
        found = set()
        for flow in flows:
            for trigger in (await self._template(flow)).triggers:
                url = trigger.get("repoUrl")
                if isinstance(url, str) and is_local_repository(url):
                    found.add(url)
        return found


def is_local_repository(url: str) -> bool:
    """A repository on this host: an absolute path or a file:// URL."""
    return url.startswith(("/", "file://"))

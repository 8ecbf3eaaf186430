"""Server-sent events of run and node transitions, per run and per stage, for live views.

Each event is ``id: <event id>``, ``event: transition`` and ``data: <JSON>`` (``wire.control``'s
``stream_event``). A client that reconnects sends ``Last-Event-ID`` (or ``?after=``) and gets only
what it has not seen. Comment lines (``: keep-alive``) are sent while nothing happens, so that proxies
keep the connection; a stream ends after its lifetime (the client reconnects) and a run's stream
also ends once the run has concluded and its last event was sent. The reading is
``engine.event_stream``'s, which the web interface reuses.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from releaseflow.api.errors import ApiError
from releaseflow.api.limits import LARGEST_INTEGER
from releaseflow.api.northflank import APP, VIEWER
from releaseflow.api.runs import RUN, RUN_OF_PATH
from releaseflow.api.stages import STAGE, STAGE_OF_PATH, Stage
from releaseflow.application import Application
from releaseflow.engine import event_stream
from releaseflow.engine.event_stream import EventScope, Timing
from releaseflow.engine.queries import RunDetail
from releaseflow.engine.tokens import Principal
from releaseflow.wire.control import stream_event

MEDIA_TYPE = "text/event-stream"
_DESCRIPTION = (
    "A text/event-stream of transitions: `id`, `event: transition`, `data` (JSON with id, runId, node,"
    " at, from, to, cause); `: keep-alive` comments while idle."
)
AFTER = Query(None, ge=0, le=LARGEST_INTEGER, description="start after this event id (as Last-Event-ID does)")
LIFETIME = Query(event_stream.LIFETIME_SECONDS, gt=0, le=3600, description="seconds before the stream ends")
HEARTBEAT = Query(event_stream.HEARTBEAT_SECONDS, ge=1, le=300, description="seconds between keep-alives")
LAST_EVENT_ID = Header(None, alias="Last-Event-ID", description="the id of the last event received")


def event_routes() -> APIRouter:
    router = APIRouter(tags=["events"])
    answers: dict[int | str, dict[str, Any]] = {
        200: {"content": {MEDIA_TYPE: {}}, "description": _DESCRIPTION}
    }
    router.add_api_route(
        RUN + "/events", run_events, methods=["GET"], summary="Stream a run's transitions", responses=answers
    )
    router.add_api_route(
        STAGE + "/events",
        stage_events,
        methods=["GET"],
        summary="Stream the transitions of every run of a stage",
        responses=answers,
    )
    return router


@dataclass(frozen=True)
class StreamOptions:
    after: int
    timing: Timing


def stream_options(
    after: int | None = AFTER,
    lifetime: float = LIFETIME,
    heartbeat: float = HEARTBEAT,
    last_event_id: str | None = LAST_EVENT_ID,
) -> StreamOptions:
    return StreamOptions(
        _start(after, last_event_id), Timing(heartbeat_seconds=heartbeat, lifetime_seconds=lifetime)
    )


OPTIONS = Depends(stream_options)


async def run_events(
    options: StreamOptions = OPTIONS,
    _: Principal = VIEWER,
    run: RunDetail = RUN_OF_PATH,
    app: Application = APP,
) -> StreamingResponse:
    return _stream(app, EventScope(run_id=run.run.id), options)


async def stage_events(
    options: StreamOptions = OPTIONS, _: Principal = VIEWER, at: Stage = STAGE_OF_PATH, app: Application = APP
) -> StreamingResponse:
    scope = await event_stream.stage_scope(app.db, at.project_id, at.pipeline_id, at.name)
    return _stream(app, scope, options)


def _start(after: int | None, last_event_id: str | None) -> int:
    """Where the stream starts: after ``Last-Event-ID`` (a reconnection), else ``after``, else 0."""
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            raise ApiError(400, f"Last-Event-ID '{last_event_id[:40]}' is not an event id this server sent")
        return int(text)
    return after or 0


def _stream(app: Application, scope: EventScope, options: StreamOptions) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        yield f"retry: {int(event_stream.POLL_SECONDS * 1000) * 2}\n\n"
        async for batch in event_stream.follow_events(app.db, scope, options.after, options.timing):
            if not batch:
                yield ": keep-alive\n\n"
            for event in batch:
                data = json.dumps(stream_event(event), separators=(",", ":"))
                yield f"id: {event.id}\nevent: transition\ndata: {data}\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(lines(), media_type=MEDIA_TYPE, headers=headers)

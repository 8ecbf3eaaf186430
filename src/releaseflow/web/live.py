"""The live run view's server-sent events: the run's events table read after a Last-Event-ID.

Polling the table (every ``POLL_SECONDS``) rather than listening to the engine keeps this the same
on SQLite and PostgreSQL and across processes: the worker that changed a node may run elsewhere.
Each batch of new events sends the re-rendered live parts of the run view as one ``run`` event whose
id is the last event's, so a reconnecting browser resumes after what it has already shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from releaseflow.engine import queries
from releaseflow.store import runs as run_store
from releaseflow.store.database import Database

POLL_SECONDS = 0.2
# A stream ends after this long and the browser reconnects (after ``RECONNECT_MS``, with its
# Last-Event-ID): a stopping server waits for open responses to end, so none may stay open for long.
STREAM_SECONDS = 10.0
RECONNECT_MS = 500


async def caught_up(db: Database, run_id: str, after: int) -> bool:
    """Whether the run has ended and the browser has shown its every event: nothing more will come
    (the endpoint answers 204, which tells the browser to stop reconnecting)."""
    summary = (await queries.run_detail(db, run_id, with_events=False)).run
    return summary.concluded and await last_event_id(db, run_id, after) == after


async def last_event_id(db: Database, run_id: str, after: int = 0) -> int:
    async with db.read() as tx:
        events = await run_store.list_events(tx, run_id, after_id=after)
    return events[-1].id if events else after


def sse_event(name: str, event_id: int, html: str) -> str:
    data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {name}\nid: {event_id}\n{data}\n"


async def run_stream(
    db: Database,
    run_id: str,
    after: int,
    render: Callable[[queries.RunDetail], Awaitable[str]],
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    """``run`` events, one per batch of new events of the run, for ``STREAM_SECONDS`` at most; sooner
    when the browser goes away or the run has ended and its last state was sent."""
    yield f"retry: {RECONNECT_MS}\n\n"
    seen = after
    deadline = asyncio.get_running_loop().time() + STREAM_SECONDS
    while asyncio.get_running_loop().time() < deadline and not await disconnected():
        latest = await last_event_id(db, run_id, seen)
        if latest > seen:
            seen = latest
            detail = await queries.run_detail(db, run_id, with_events=False)
            yield sse_event("run", seen, await render(detail))
            if detail.run.concluded and await last_event_id(db, run_id, seen) == seen:
                return
        await asyncio.sleep(POLL_SECONDS)

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
# A comment line this often keeps proxies and the browser from dropping a quiet stream.
KEEPALIVE_SECONDS = 15.0


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
    """``run`` events, one per batch of new events of the run, until the browser goes away."""
    yield "retry: 1000\n\n"
    seen = after
    quiet = 0.0
    while not await disconnected():
        latest = await last_event_id(db, run_id, seen)
        if latest > seen:
            seen = latest
            quiet = 0.0
            detail = await queries.run_detail(db, run_id, with_events=False)
            yield sse_event("run", seen, await render(detail))
        elif quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keepalive\n\n"
        await asyncio.sleep(POLL_SECONDS)
        quiet += POLL_SECONDS

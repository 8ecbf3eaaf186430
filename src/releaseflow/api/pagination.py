"""Pagination of list endpoints, as Northflank's clients expect it.

Query: ``per_page`` (1..100, default 50), ``page`` (1-based) or ``cursor`` (from the previous page).
Answer: ``{"data": {KEY: [...]}, "pagination": {"hasNextPage", "count", "cursor"?}}``, where ``cursor``
is present only when another page exists: the JS client's fetch-all helper loops while it is defined,
and would loop for ever on ``"cursor": null``. Cursors are opaque, URL-safe strings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Query

from releaseflow.api.errors import ApiError

T = TypeVar("T")
PER_PAGE_DEFAULT = 50
PER_PAGE_MAX = 100
# ``page`` walks the cursor from the first page: bounded so that a request cannot ask for a walk
# over millions of rows.
PAGE_MAX = 1000


@dataclass(frozen=True)
class PageRequest:
    per_page: int
    page: int | None
    cursor: str | None


def page_request(
    per_page: int = Query(PER_PAGE_DEFAULT, ge=1, le=PER_PAGE_MAX, description="items per page"),
    page: int | None = Query(None, ge=1, le=PAGE_MAX, description="page number, from 1"),
    cursor: str | None = Query(None, max_length=200, description="the cursor of the previous page"),
) -> PageRequest:
    return PageRequest(per_page, page, cursor)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None


# Fetches the page after ``cursor`` (None: the first page) of at most ``limit`` items.
Fetch = Callable[[str | None, int], Awaitable[Page[T]]]


async def fetch_page(request: PageRequest, fetch: Fetch[T]) -> Page[T]:
    """The page asked for: after ``cursor``, or the ``page``-th one walking from the first."""
    if request.cursor is not None:
        return await fetch(request.cursor, request.per_page)
    page = await fetch(None, request.per_page)
    for _ in range((request.page or 1) - 1):
        if page.next_cursor is None:
            return Page([], None)
        page = await fetch(page.next_cursor, request.per_page)
    return page


def list_page(items: Sequence[T], cursor: str | None, limit: int) -> Page[T]:
    """A page of a list held whole in memory; its cursor is the offset of the next item."""
    offset = 0
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()):
            raise ApiError(400, f"cursor '{cursor}' is not one this server gave")
        offset = int(cursor)
    rest = items[offset : offset + limit]
    more = offset + limit < len(items)
    return Page(rest, str(offset + limit) if more else None)


def paginated(key: str, page: Page[Any], shown: Callable[[Any], Any]) -> dict[str, Any]:
    pagination: dict[str, Any] = {"hasNextPage": page.next_cursor is not None, "count": len(page.items)}
    if page.next_cursor is not None:
        pagination["cursor"] = page.next_cursor
    return {"data": {key: [shown(item) for item in page.items]}, "pagination": pagination}

"""The envelopes of answers as models, so that ``/docs`` shows what a route answers: ``{"data": ...}``,
and a page of a list with its ``pagination`` (``api/pagination.py``)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from releaseflow.api.pagination import Page

T = TypeVar("T")


class Answer(BaseModel, Generic[T]):
    data: T


class Pagination(BaseModel):
    hasNextPage: bool
    count: int
    # Left out (not null) on the last page: clients loop while it is defined. Routes that answer a
    # page serialize with ``response_model_exclude_unset`` for that reason.
    cursor: str | None = Field(
        default=None, description="the cursor of the next page; absent on the last one"
    )

    @classmethod
    def of(cls, page: Page[Any]) -> Pagination:
        if page.next_cursor is None:
            return cls(hasNextPage=False, count=len(page.items))
        return cls(hasNextPage=True, count=len(page.items), cursor=page.next_cursor)

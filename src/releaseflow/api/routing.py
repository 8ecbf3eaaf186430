"""A router made from a table of routes: (method, path, endpoint, summary) each."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter

Route = tuple[str, str, Callable[..., Any], str]


def router_of(tag: str, routes: Iterable[Route], **options: Any) -> APIRouter:
    """``options`` go to every route (e.g. ``response_model_exclude_unset``)."""
    router = APIRouter(tags=[tag])
    for method, path, endpoint, summary in routes:
        router.add_api_route(path, endpoint, methods=[method], summary=summary, **options)
    return router

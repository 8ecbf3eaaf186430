"""The one error envelope of the HTTP API, and the handlers that turn every failure into it.

Every refusal is ``{"error": {"status", "message", "details"?}}`` with a 4xx status (Northflank's
envelope, which its clients parse): releaseflow's own errors, FastAPI's request validation (wrong
types, malformed JSON), unknown paths and methods. Anything else is a bug: logged, answered 500 in
the same envelope without its details.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from releaseflow.domain.access import AccessError, Forbidden, Unauthenticated
from releaseflow.domain.errors import ConflictError, NotFoundError, ReleaseflowError, ValidationError

log = logging.getLogger(__name__)

# The status of each kind of releaseflow error; the first match wins (subclasses first).
_STATUS: tuple[tuple[type[ReleaseflowError], int], ...] = (
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (ValidationError, 400),
    (AccessError, 400),
)


# FastAPI's words for a body its JSON parser gave up on (not UTF-8, nested too deeply).
_FASTAPI_UNREADABLE_BODY = "There was an error parsing the body"


class ApiError(Exception):
    """A refusal decided in the API layer itself (a bad query value, a body too large)."""

    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def error_response(
    status: int, message: str, details: Any = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    error: dict[str, Any] = {"status": status, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status, headers=dict(headers or {}))


# The envelope of every refusal, as the OpenAPI document declares it.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "message"],
            "properties": {
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "message": {"type": "string", "description": "what is wrong, for a person"},
                "details": {
                    "type": "array",
                    "description": "each problem of the request, where it is",
                    "items": {
                        "type": "object",
                        "required": ["path", "message"],
                        "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
        }
    },
}
_REFUSAL = {
    "description": "refused: the request is wrong, unauthenticated, forbidden, about something unknown,"
    " in conflict, or too large",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def document_refusals(app: FastAPI) -> None:
    """Make the app's OpenAPI document say what the handlers here answer: any operation may be refused
    with a 4xx in the envelope, and none answers FastAPI's 422 (request validation is a 400 here).
    Routes added later are covered too: the document is rewritten when it is first built."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for methods in document.get("paths", {}).values():
            for operation in methods.values():
                answers = operation.setdefault("responses", {})
                answers.pop("422", None)
                answers.setdefault("4XX", _REFUSAL)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        schemas["Error"] = ERROR_SCHEMA
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    document_refusals(app)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(ReleaseflowError, _releaseflow_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


async def _api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(error.status, error.message, error.details)


async def _releaseflow_error(request: Request, error: Exception) -> JSONResponse:
    status = next((code for kind, code in _STATUS if isinstance(error, kind)), 400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    details = None
    if isinstance(error, ValidationError):
        details = [{"path": issue.path, "message": issue.message} for issue in error.issues]
    return error_response(status, str(error), details, headers)


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [_problem(item) for item in error.errors()]
    message = "; ".join(f"{where}: {what}" if where else what for where, what in problems)
    details = [{"path": where, "message": what} for where, what in problems]
    return error_response(400, f"the request is invalid: {message}", details)


def _problem(item: Mapping[str, Any]) -> tuple[str, str]:
    """Where a problem is (``name``, ``query.per_page``, ``body``; empty when the message says it) and
    what it is."""
    location: Sequence[Any] = item.get("loc", ())
    where = ".".join(str(part) for part in location if part != "body")
    if item.get("type") == "json_invalid":
        return "", f"the body is not valid JSON ({item.get('ctx', {}).get('error', 'malformed')})"
    if item.get("type") == "missing" and not where:
        return "", "a JSON body is required"
    return where or "body", str(item.get("msg", "invalid"))


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    message = error.detail if isinstance(error.detail, str) else "request refused"
    if message == _FASTAPI_UNREADABLE_BODY:
        message = "the body cannot be read as JSON (malformed, not UTF-8, or nested too deeply)"
    elif error.status_code == 404 and message == "Not Found":
        message = f"no such path: {request.url.path} (the API is under /v1; see /docs)"
    elif error.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(error.status_code, message, headers=error.headers)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=error)
    return error_response(500, "internal error; the server log has the details")

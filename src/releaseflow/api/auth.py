"""Access control of the HTTP API: the one dependency every route declares.

``requires(role)`` authenticates the request's ``Authorization: Bearer <token>`` and checks that the
token holds ``role`` (or a higher one) in the project of the path (``{projectId}``); a route about
no one project accepts a token of any project. No token, or an unknown, revoked or expired one,
is answered 401; a token without the role or for another project 403 (the error envelope says
which). tests/integration/test_api_access.py walks every route of the app against a table of the
role each one needs, so a route added without this dependency fails the suite.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from releaseflow.application import Application
from releaseflow.domain.access import Role, Unauthenticated
from releaseflow.engine import tokens
from releaseflow.engine.tokens import Principal

PROJECT_PARAMETER = "projectId"


def application(request: Request) -> Application:
    """The process's application (database, engine, clock), open while the app serves."""
    found: Application | None = request.app.state.runtime.application
    if found is None:
        raise RuntimeError("the application is not started")
    return found


def inbox_key(request: Request) -> str:
    """The key that lets a sender post to the message inbox without a token."""
    key: str = request.app.state.runtime.inbox_key
    return key


def bearer_secret(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated("no token: send the header 'Authorization: Bearer <token>'")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return secret.strip()


def requires(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    """The dependency of a route that needs ``role``; it returns who the request acts as."""

    async def check_access(request: Request) -> Principal:
        app = application(request)
        principal = await tokens.authenticate(app.db, app.clock, bearer_secret(request))
        principal.check(role, request.path_params.get(PROJECT_PARAMETER))
        return principal

    return check_access

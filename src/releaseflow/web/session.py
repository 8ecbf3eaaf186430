"""Sign-in for the web interface: an API token kept in an HttpOnly, SameSite=Strict cookie.

Every page authenticates the cookie's token on each request (a revoked or expired token is signed
out at once) and checks the role the page or action needs (viewer, deployer, admin, as the API does).
Forms carry a per-session CSRF token: a keyed hash of the session's secret, so it cannot be made
without the cookie, and SameSite=Strict keeps the cookie off cross-site requests in the first place.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from releaseflow.application import Application
from releaseflow.domain.access import Forbidden, Role, Unauthenticated
from releaseflow.engine import tokens
from releaseflow.engine.tokens import Principal

COOKIE = "releaseflow_session"
CSRF_FIELD = "csrf"


class SignInNeeded(Exception):
    """The request has no valid session: the page sends the person to the sign-in form."""


def csrf_token(secret: str) -> str:
    """The CSRF token of the session whose cookie holds ``secret``."""
    return hmac.new(secret.encode(), b"releaseflow-web-csrf", hashlib.sha256).hexdigest()


async def principal(app: Application, request: Request) -> Principal:
    """Who the request acts as; SignInNeeded when the cookie is absent or no longer valid."""
    secret = request.cookies.get(COOKIE)
    if not secret:
        raise SignInNeeded()
    try:
        return await tokens.authenticate(app.db, app.clock, secret)
    except Unauthenticated as error:
        raise SignInNeeded() from error


async def allowed(app: Application, request: Request, role: Role, project_id: str | None) -> Principal:
    """The request's principal, once it holds ``role`` in ``project_id`` (Forbidden otherwise)."""
    found = await principal(app, request)
    found.check(role, project_id)
    return found


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a form whose CSRF token is not the session's."""
    secret = request.cookies.get(COOKIE, "")
    if not secret or not submitted or not hmac.compare_digest(submitted, csrf_token(secret)):
        raise Forbidden("the form's CSRF token is missing or stale: reload the page and try again")

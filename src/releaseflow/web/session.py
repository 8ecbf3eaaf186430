"""Sign-in for the web interface: a user's session secret, or an API token, kept in an HttpOnly,
SameSite=Strict cookie.

Every page authenticates the cookie on each request (a revoked or expired token, a session signed
out or expired, a disabled user: signed out at once) and checks the role the page or action needs
(viewer, deployer, admin, as the API does); a user and a token are both a ``Principal``.
Forms carry a per-session CSRF token: a keyed hash of the session's secret, so it cannot be made
without the cookie, and SameSite=Strict keeps the cookie off cross-site requests in the first place.
The sign-in form, shown before there is a session, carries a nonce of its own that a SameSite=Strict
cookie holds too: a form posted from another site arrives without that cookie, so no site can sign a
person in to an account of its choosing (login CSRF) and have them act in it unawares.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request, Response

from releaseflow.application import Application
from releaseflow.domain.access import Forbidden, Principal, Role, Unauthenticated
from releaseflow.engine import tokens, user_sessions

COOKIE = "releaseflow_session"
PATH = "/web"
CSRF_FIELD = "csrf"
SIGNIN_COOKIE = "releaseflow_signin"


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
        if user_sessions.is_session_secret(secret):
            return await user_sessions.authenticate(app.db, app.clock, secret)
        return await tokens.authenticate(app.db, app.clock, secret)
    except Unauthenticated as error:
        raise SignInNeeded() from error


async def sign_in(app: Application, *, name: str, password: str, token: str) -> str:
    """The cookie's value for a user's name and password, or else an API token;
    ``Unauthenticated`` says why neither signs in."""
    if name.strip() or password:
        return (await user_sessions.sign_in(app.db, app.clock, name, password)).secret
    if not token.strip():
        raise Unauthenticated("enter a user name and password, or an API token")
    await tokens.authenticate(app.db, app.clock, token.strip())
    return token.strip()


async def end_session(app: Application, request: Request) -> None:
    """End the user session the request's cookie holds, if it holds one (a token stays valid)."""
    secret = request.cookies.get(COOKIE, "")
    if user_sessions.is_session_secret(secret):
        await user_sessions.sign_out(app.db, app.clock, secret)


def forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH)


def keep(response: Response, secret: str) -> None:
    response.set_cookie(COOKIE, secret, httponly=True, samesite="strict", path=PATH)


async def allowed(app: Application, request: Request, role: Role, project_id: str | None) -> Principal:
    """The request's principal, once it holds ``role`` in ``project_id`` (Forbidden otherwise)."""
    found = await principal(app, request)
    found.check(role, project_id)
    return found


def signin_nonce(request: Request) -> str:
    """The sign-in form's nonce: the one the request's cookie holds, or a new one."""
    return request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(32)


def keep_signin_nonce(response: Response, nonce: str) -> None:
    response.set_cookie(SIGNIN_COOKIE, nonce, httponly=True, samesite="strict", path=PATH)


def check_signin_nonce(request: Request, submitted: str) -> None:
    """Refuse a sign-in whose form this site did not show to this browser."""
    kept = request.cookies.get(SIGNIN_COOKIE, "")
    if not kept or not submitted or not hmac.compare_digest(submitted, kept):
        raise Forbidden("this sign-in form is stale or was sent from another site: sign in again here")


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a form whose CSRF token is not the session's."""
    secret = request.cookies.get(COOKIE, "")
    if not secret or not submitted or not hmac.compare_digest(submitted, csrf_token(secret)):
        raise Forbidden("the form's CSRF token is missing or stale: reload the page and try again")

"""The web interface's forms driven over plain HTTP (no browser): their CSRF tokens and the sign-in."""

from __future__ import annotations

import httpx


def session_csrf(page: str) -> str:
    """The CSRF token a page's forms carry (the session's, or the sign-in form's nonce)."""
    marker = 'name="csrf" value="'
    assert marker in page, "the page has no form with a CSRF token"
    return page.split(marker, 1)[1].split('"', 1)[0]


def sign_in(client: httpx.Client, form: dict[str, str], *, web: str = "") -> httpx.Response:
    """Post the sign-in form as a browser does: shown first (its nonce cookie set), then sent."""
    shown = client.get(f"{web}/signin")
    assert shown.status_code == 200, shown.text
    return client.post(f"{web}/signin", data={**form, "csrf": session_csrf(shown.text)})

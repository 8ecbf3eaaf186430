"""The web interface's form handling: run dialog fields, sign-in redirects, CSRF tokens, SSE framing."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData

from releaseflow.domain.errors import ValidationError
from releaseflow.domain.run_origin import OriginKind, RunOrigin
from releaseflow.web import live, session, views

ORIGIN = RunOrigin(OriginKind.PERSON, "dana")


def test_run_request__takes_name_arguments_and_release_overrides() -> None:
    form = FormData(
        [
            ("name", " nightly "),
            ("description", "from the dialog"),
            ("args", "who=web\n\ncolour = blue"),
            ("release.web", '{"type": "build", "origin": {"id": "builder", "build": "bld-1"}}'),
            ("release.api", ""),
        ]
    )
    request = views.run_request_of(form, ORIGIN)
    assert request.name == "nightly" and request.description == "from the dialog"
    assert request.arguments == {"who": "web", "colour": "blue"}
    assert request.release_node_overrides == {
        "web": {"type": "build", "origin": {"id": "builder", "build": "bld-1"}}
    }
    assert request.origin == ORIGIN


def test_run_request__names_every_bad_field() -> None:
    form = FormData([("args", "no equals sign"), ("release.web", "{not json"), ("release.api", "[1]")])
    with pytest.raises(ValidationError) as raised:
        views.run_request_of(form, ORIGIN)
    text = str(raised.value)
    assert "args" in text and "release.web" in text and "release.api" in text


def test_sign_in_leads_only_to_this_interface() -> None:
    assert views.local_path("/web/runs/abc") == "/web/runs/abc"
    assert views.local_path("https://elsewhere.example/") == "/web/"
    assert views.local_path("//elsewhere.example/web/") == "/web/"


def test_csrf_token__is_the_sessions_own() -> None:
    assert session.csrf_token("secret-a") == session.csrf_token("secret-a")
    assert session.csrf_token("secret-a") != session.csrf_token("secret-b")


def test_last_event_id__header_first_then_query_else_start() -> None:
    assert views.event_id("12", "3") == 12
    assert views.event_id(None, "3") == 3
    assert views.event_id("junk", None) == 0


def test_sse_event__one_data_line_per_html_line() -> None:
    assert live.sse_event("run", 7, "<p>\na</p>") == "event: run\nid: 7\ndata: <p>\ndata: a</p>\n\n"

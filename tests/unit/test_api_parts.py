"""The pure parts of the HTTP API: roles, token expiry words, paging, and where a node's response goes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from releaseflow.api.errors import ApiError
from releaseflow.api.pagination import Page, PageRequest, fetch_page, list_page, paginated
from releaseflow.cli.tokens import parse_expiry
from releaseflow.domain.access import AccessError, Forbidden, Role
from releaseflow.engine.tokens import Principal
from releaseflow.wire.northflank import node_at

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_roles__each_allows_the_ones_below_it() -> None:
    allowed = {(held, needed) for held in Role for needed in Role if held.allows(needed)}

    assert allowed == {
        (Role.VIEWER, Role.VIEWER),
        (Role.DEPLOYER, Role.VIEWER),
        (Role.DEPLOYER, Role.DEPLOYER),
        (Role.ADMIN, Role.VIEWER),
        (Role.ADMIN, Role.DEPLOYER),
        (Role.ADMIN, Role.ADMIN),
    }
    assert Role.parse(" Admin ") is Role.ADMIN
    with pytest.raises(AccessError, match="unknown role 'owner' \\(known: viewer, deployer, admin\\)"):
        Role.parse("owner")


def test_principal__checks_the_project_then_the_role() -> None:
    everywhere = Principal.of_token("t1", "root", "*", Role.ADMIN)
    acme_viewer = Principal.of_token("t2", "ci", "acme", Role.VIEWER)

    everywhere.check(Role.ADMIN, "anything")
    acme_viewer.check(Role.VIEWER, "acme")
    acme_viewer.check(Role.VIEWER, None)  # a route about no one project
    with pytest.raises(Forbidden, match="is for project 'acme', not 'other'"):
        acme_viewer.check(Role.VIEWER, "other")
    with pytest.raises(Forbidden, match="is a viewer; this needs the deployer role or more"):
        acme_viewer.check(Role.DEPLOYER, "acme")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", NOW + timedelta(seconds=45)),
        ("90m", NOW + timedelta(minutes=90)),
        ("12h", NOW + timedelta(hours=12)),
        ("30d", NOW + timedelta(days=30)),
        ("2w", NOW + timedelta(weeks=2)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T10:00:00+02:00", datetime(2026, 3, 1, 8, tzinfo=UTC)),
    ],
)
def test_parse_expiry__durations_and_moments(text: str, expected: datetime) -> None:
    assert parse_expiry(text, NOW) == expected


def test_parse_expiry__names_what_it_accepts() -> None:
    with pytest.raises(AccessError, match="--expires 'soon' is neither a duration"):
        parse_expiry("soon", NOW)


def test_list_page__a_cursor_only_while_items_remain() -> None:
    items = list(range(5))
    first = list_page(items, None, 2)
    second = list_page(items, first.next_cursor, 2)
    last = list_page(items, second.next_cursor, 2)

    assert (first.items, second.items, last.items) == ([0, 1], [2, 3], [4])
    assert last.next_cursor is None
    assert paginated("n", last, str) == {
        "data": {"n": ["4"]},
        "pagination": {"hasNextPage": False, "count": 1},
    }
    assert paginated("n", first, str)["pagination"] == {"hasNextPage": True, "count": 2, "cursor": "2"}
    with pytest.raises(ApiError, match="cursor 'x' is not one this server gave"):
        list_page(items, "x", 2)


def test_fetch_page__page_numbers_walk_the_cursors() -> None:
    items = list(range(7))

    async def fetch(cursor: str | None, limit: int) -> Page[int]:
        return list_page(items, cursor, limit)

    def page(number: int) -> list[int]:
        return list(asyncio.run(fetch_page(PageRequest(per_page=3, page=number, cursor=None), fetch)).items)

    assert [page(1), page(2), page(3), page(4)] == [[0, 1, 2], [3, 4, 5], [6], []]


def test_at__finds_a_node_by_its_path_or_nothing() -> None:
    document = {
        "spec": {"kind": "Workflow", "spec": {"steps": [{"ref": "a"}, {"spec": {"steps": [{"ref": "b"}]}}]}}
    }

    assert node_at(document, "spec")["kind"] == "Workflow"
    assert node_at(document, "spec.spec.steps[1].spec.steps[0]") == {"ref": "b"}
    assert node_at(document, "spec.spec.steps[5]") is None
    assert node_at(document, "spec.nothing.steps[0]") is None

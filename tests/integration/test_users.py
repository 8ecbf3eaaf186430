"""User accounts on SQLite and PostgreSQL: create, authenticate (one answer for an unknown name and a
wrong password, a lock after repeated failures), roles per project, sessions, disable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from releaseflow.domain.access import (
    AccessError,
    Forbidden,
    Grant,
    PrincipalKind,
    Role,
    Unauthenticated,
)
from releaseflow.domain.errors import ConflictError, NotFoundError
from releaseflow.domain.passwords import FAILURES_BEFORE_LOCK, FIRST_LOCK
from releaseflow.engine import user_sessions, users
from releaseflow.store import catalog
from releaseflow.store.database import Database

PASSWORD = "correct horse battery"


class StepClock:
    """A clock a test moves by hand."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 3, 1, 9, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, by: timedelta) -> None:
        self.moment += by


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


async def _project(db: Database, project_id: str, clock: StepClock) -> None:
    async with db.transaction() as tx:
        await catalog.save_project(tx, project_id, project_id, "", clock.now())


async def _user(db: Database, clock: StepClock, name: str, *grants: Grant) -> users.UserView:
    return await users.create_user(db, clock, name=name, password=PASSWORD, grants=grants, created_by="test")


async def test_users__a_user_signs_in_as_a_principal_with_its_roles(db: Database, clock: StepClock) -> None:
    await _project(db, "shop", clock)
    created = await _user(db, clock, " Dana ", Grant("shop", Role.DEPLOYER))
    assert created.name == "dana" and created.state == "active"

    who = await users.authenticate(db, clock, "DANA", PASSWORD)

    assert (who.kind, who.name, who.grants) == (PrincipalKind.USER, "dana", (Grant("shop", Role.DEPLOYER),))
    who.check(Role.DEPLOYER, "shop")
    with pytest.raises(Forbidden, match="user 'dana' is a deployer; this needs the admin role"):
        who.check(Role.ADMIN, "shop")
    with pytest.raises(Forbidden, match="user 'dana' is for project 'shop', not 'other'"):
        who.check(Role.VIEWER, "other")


async def test_users__unknown_name_and_wrong_password_get_one_answer(db: Database, clock: StepClock) -> None:
    await _user(db, clock, "erin", Grant("*", Role.VIEWER))
    answers = []
    for name, password in (("erin", "wrong password!"), ("nobody", PASSWORD), ("not a name!", PASSWORD)):
        with pytest.raises(Unauthenticated) as refused:
            await users.authenticate(db, clock, name, password)
        answers.append(str(refused.value))
    assert answers == [users.SIGN_IN_REFUSED] * 3


async def test_users__repeated_failures_lock_a_name_known_or_not(db: Database, clock: StepClock) -> None:
    await _user(db, clock, "frank", Grant("*", Role.VIEWER))
    for name in ("frank", "ghost"):
        for _ in range(FAILURES_BEFORE_LOCK):
            with pytest.raises(Unauthenticated, match=users.SIGN_IN_REFUSED):
                await users.authenticate(db, clock, name, "wrong password!")
        # Locked: even the right password is refused, and the answer says for how long.
        with pytest.raises(Unauthenticated, match=f"too many failed sign-ins as '{name}': try again after"):
            await users.authenticate(db, clock, name, PASSWORD)

    clock.advance(FIRST_LOCK + timedelta(seconds=1))
    assert (await users.authenticate(db, clock, "frank", PASSWORD)).name == "frank"
    # The success ended the streak: one more failure does not lock again.
    with pytest.raises(Unauthenticated, match=users.SIGN_IN_REFUSED):
        await users.authenticate(db, clock, "frank", "wrong password!")
    assert (await users.authenticate(db, clock, "frank", PASSWORD)).name == "frank"


async def test_users__a_disabled_user_cannot_sign_in_and_its_sessions_end(
    db: Database, clock: StepClock
) -> None:
    await _user(db, clock, "gina", Grant("*", Role.DEPLOYER))
    signed = await user_sessions.sign_in(db, clock, "gina", PASSWORD)

    disabled = await users.disable_user(db, clock, "gina")

    assert disabled.state == "disabled"
    with pytest.raises(Unauthenticated, match="the user 'gina' is disabled"):
        await users.authenticate(db, clock, "gina", PASSWORD)
    with pytest.raises(Unauthenticated, match="signed out"):
        await user_sessions.authenticate(db, clock, signed.secret)
    await users.enable_user(db, "gina")
    assert (await users.authenticate(db, clock, "gina", PASSWORD)).name == "gina"


async def test_users__a_session_lasts_until_sign_out_or_expiry(db: Database, clock: StepClock) -> None:
    await _user(db, clock, "hana", Grant("*", Role.VIEWER))
    first = await user_sessions.sign_in(db, clock, "hana", PASSWORD)
    second = await user_sessions.sign_in(db, clock, "hana", PASSWORD)
    assert user_sessions.is_session_secret(first.secret) and first.secret != second.secret

    assert (await user_sessions.authenticate(db, clock, first.secret)).name == "hana"
    await user_sessions.sign_out(db, clock, first.secret)
    with pytest.raises(Unauthenticated, match="the session was signed out"):
        await user_sessions.authenticate(db, clock, first.secret)
    assert (await user_sessions.authenticate(db, clock, second.secret)).name == "hana"

    clock.advance(user_sessions.SESSION_LIFETIME)
    with pytest.raises(Unauthenticated, match="the session expired at"):
        await user_sessions.authenticate(db, clock, second.secret)
    with pytest.raises(Unauthenticated, match="not known to this server"):
        await user_sessions.authenticate(db, clock, user_sessions.SESSION_PREFIX + "made-up")


async def test_users__roles_change_at_once_for_a_signed_in_user(db: Database, clock: StepClock) -> None:
    await _project(db, "shop", clock)
    await _project(db, "docs", clock)
    await _user(db, clock, "ivan", Grant("shop", Role.VIEWER))
    signed = await user_sessions.sign_in(db, clock, "ivan", PASSWORD)

    await users.grant_role(db, clock, "ivan", Grant("shop", Role.DEPLOYER))  # replaces viewer
    granted = await users.grant_role(db, clock, "ivan", Grant("docs", Role.ADMIN))

    assert granted.grants == (Grant("docs", Role.ADMIN), Grant("shop", Role.DEPLOYER))
    who = await user_sessions.authenticate(db, clock, signed.secret)
    who.check(Role.DEPLOYER, "shop")
    who.check(Role.ADMIN, "docs")
    assert who.sees("docs") and not who.sees("elsewhere")

    await users.revoke_role(db, "ivan", "shop")
    who = await user_sessions.authenticate(db, clock, signed.secret)
    with pytest.raises(Forbidden, match="user 'ivan' is for project 'docs', not 'shop'"):
        who.check(Role.VIEWER, "shop")
    with pytest.raises(NotFoundError, match="holds no role in project 'shop' \\(its roles: admin in docs\\)"):
        await users.revoke_role(db, "ivan", "shop")


async def test_users__a_new_password_replaces_the_old_and_ends_sessions(
    db: Database, clock: StepClock
) -> None:
    await _user(db, clock, "jo", Grant("*", Role.VIEWER))
    signed = await user_sessions.sign_in(db, clock, "jo", PASSWORD)

    await users.set_password(db, clock, "jo", "a brand new secret")

    with pytest.raises(Unauthenticated, match=users.SIGN_IN_REFUSED):
        await users.authenticate(db, clock, "jo", PASSWORD)
    assert (await users.authenticate(db, clock, "jo", "a brand new secret")).name == "jo"
    with pytest.raises(Unauthenticated, match="signed out"):
        await user_sessions.authenticate(db, clock, signed.secret)


async def test_users__passwords_are_stored_salted_never_as_given(db: Database, clock: StepClock) -> None:
    await _user(db, clock, "kim", Grant("*", Role.VIEWER))
    await _user(db, clock, "lee", Grant("*", Role.VIEWER))
    async with db.read() as tx:
        stored = [row["password_hash"] for row in await tx.fetchall("SELECT password_hash FROM users")]
    assert len(set(stored)) == 2
    assert all(value.startswith("scrypt$") and PASSWORD not in value for value in stored)


async def test_users__bad_input_is_refused_by_name(db: Database, clock: StepClock) -> None:
    await _user(db, clock, "max", Grant("*", Role.VIEWER))
    with pytest.raises(ConflictError, match="a user named 'max' exists already"):
        await _user(db, clock, "MAX", Grant("*", Role.VIEWER))
    with pytest.raises(NotFoundError, match="no project 'nowhere'"):
        await _user(db, clock, "nia", Grant("nowhere", Role.VIEWER))
    with pytest.raises(AccessError, match="the password is too short"):
        await users.create_user(db, clock, name="nia", password="short", grants=(), created_by="test")
    with pytest.raises(AccessError, match="the user name 'n ia' is not valid"):
        await users.create_user(db, clock, name="n ia", password=PASSWORD, grants=(), created_by="test")
    with pytest.raises(NotFoundError, match="no user named 'nobody'"):
        await users.disable_user(db, clock, "nobody")
    assert [view.name for view in await users.list_users(db)] == ["max"]

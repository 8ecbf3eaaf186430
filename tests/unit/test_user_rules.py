"""The pure rules of user accounts: names, passwords and their hash, the lock, a principal's grants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from releaseflow.domain.access import AccessError, Forbidden, Grant, Principal, Role
from releaseflow.domain.passwords import (
    FAILURES_BEFORE_LOCK,
    FIRST_LOCK,
    LONGEST_LOCK,
    check_password,
    hash_password,
    locked_until,
    password_matches,
    user_name,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
SALT = b"0123456789abcdef"


def test_user_name__is_trimmed_lower_case_and_plain() -> None:
    assert user_name("  Dana.Ops@example ") == "dana.ops@example"
    for bad in ("", "-dash", "two words", "x" * 65, "émile"):
        with pytest.raises(AccessError, match="is not valid"):
            user_name(bad)


def test_check_password__names_what_is_wrong() -> None:
    check_password("ten chars!")
    with pytest.raises(AccessError, match="too short: at least 10"):
        check_password("nine char")
    with pytest.raises(AccessError, match="too long"):
        check_password("x" * 1025)
    with pytest.raises(AccessError, match="white space"):
        check_password(" padded password ")


def test_password_hash__matches_only_its_password_and_depends_on_the_salt() -> None:
    stored = hash_password("correct horse", SALT)
    assert stored.startswith("scrypt$16384$8$1$") and "correct horse" not in stored
    assert password_matches("correct horse", stored)
    assert not password_matches("correct horsE", stored)
    assert hash_password("correct horse", b"another salt....") != stored
    for broken in ("", "scrypt$1$2", "bcrypt$16384$8$1$AAAA$AAAA", "scrypt$x$8$1$AAAA$AAAA"):
        assert not password_matches("correct horse", broken)


def test_locked_until__after_the_limit_doubles_up_to_the_longest() -> None:
    assert locked_until(FAILURES_BEFORE_LOCK - 1, NOW) is None
    assert locked_until(FAILURES_BEFORE_LOCK, NOW) == NOW + FIRST_LOCK
    assert locked_until(FAILURES_BEFORE_LOCK + 1, NOW) == NOW + 2 * FIRST_LOCK
    assert locked_until(FAILURES_BEFORE_LOCK + 50, NOW) == NOW + LONGEST_LOCK


def test_principal__a_user_holds_the_strongest_role_its_grants_give() -> None:
    user = Principal.of_user("u1", "dana", [Grant("*", Role.VIEWER), Grant("shop", Role.DEPLOYER)])

    assert user.role_in("shop") is Role.DEPLOYER
    assert user.role_in("docs") is Role.VIEWER
    assert user.role_in(None) is Role.DEPLOYER
    assert user.allows(Role.DEPLOYER, "shop") and not user.allows(Role.DEPLOYER, "docs")
    assert user.describe() == "viewer in every project, deployer in shop"
    user.check(Role.DEPLOYER, None)
    with pytest.raises(Forbidden, match="user 'dana' is a viewer; this needs the deployer role"):
        user.check(Role.DEPLOYER, "docs")


def test_principal__a_user_without_roles_is_refused_everywhere() -> None:
    nobody = Principal.of_user("u2", "erin", [])
    assert nobody.describe() == "no role" and not nobody.sees("shop")
    with pytest.raises(Forbidden, match="user 'erin' holds no role in any project \\(its roles: no role\\)"):
        nobody.check(Role.VIEWER, None)
    with pytest.raises(Forbidden, match="holds no role in project 'shop'"):
        nobody.check(Role.VIEWER, "shop")

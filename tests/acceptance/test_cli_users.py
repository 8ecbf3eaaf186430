"""``releaseflow user``: create (password on standard input), list, grant, revoke, disable, enable,
password; bad input is refused with a message naming what is wrong."""

from __future__ import annotations

from tests.acceptance.support import Releaseflow

PASSWORD = "correct horse battery\n"


def test_cli_users__create_list_grant_revoke_disable_and_password(releaseflow: Releaseflow) -> None:
    releaseflow.cli("db", "migrate", check=True)

    created = releaseflow.cli("user", "create", "Dana", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "created user 'dana' (active): admin in every project"
    listed = releaseflow.cli("user", "list", check=True).stdout
    assert listed.startswith("dana ") and "active" in listed and "admin in every project" in listed
    assert "correct horse" not in listed

    granted = releaseflow.cli("user", "grant", "dana", "--role", "viewer", "--project", "*", check=True)
    assert granted.stdout.strip() == "granted: user 'dana' (active): viewer in every project"
    revoked = releaseflow.cli("user", "revoke", "dana", check=True)
    assert revoked.stdout.strip() == "revoked: user 'dana' (active): no role"

    disabled = releaseflow.cli("user", "disable", "dana", check=True)
    assert "disabled user 'dana' (disabled)" in disabled.stdout
    assert "disabled" in releaseflow.cli("user", "list", check=True).stdout
    assert "(active)" in releaseflow.cli("user", "enable", "dana", check=True).stdout

    changed = releaseflow.cli("user", "password", "dana", "--password-stdin", stdin="another long one\n")
    assert changed.returncode == 0 and "changed the password of user 'dana'" in changed.stdout


def test_cli_users__bad_input_says_what_is_wrong(releaseflow: Releaseflow) -> None:
    releaseflow.cli("db", "migrate", check=True)
    releaseflow.cli(
        "user", "create", "erin", "--role", "viewer", "--password-stdin", stdin=PASSWORD, check=True
    )

    cases = [
        (("user", "create", "erin", "--role", "viewer", "--password-stdin"), PASSWORD, "exists already"),
        (
            ("user", "create", "frank", "--role", "owner", "--password-stdin"),
            PASSWORD,
            "unknown role 'owner'",
        ),
        (("user", "create", "frank", "--role", "viewer", "--password-stdin"), "short\n", "too short"),
        (
            ("user", "create", "frank", "--role", "viewer", "--project", "shop", "--password-stdin"),
            PASSWORD,
            "no project 'shop'",
        ),
        (("user", "create", "frank", "--role", "viewer"), "", "standard input is not a terminal"),
        (("user", "grant", "nobody", "--role", "viewer"), None, "no user named 'nobody'"),
        (("user", "revoke", "erin", "--project", "shop"), None, "holds no role in project 'shop'"),
    ]
    for args, stdin, message in cases:
        refused = releaseflow.cli(*args, stdin=stdin)
        assert refused.returncode != 0, args
        assert message in refused.stderr, (args, refused.stderr)
    assert [line.split()[0] for line in releaseflow.cli("user", "list", check=True).stdout.splitlines()] == [
        "erin"
    ]

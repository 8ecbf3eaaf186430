"""User accounts for the web interface: ``user create``, ``list``, ``grant``, ``revoke``, ``disable``,
``enable``, ``password``.

A password is asked twice on the terminal (never echoed), or read from standard input with
``--password-stdin`` (one line, for scripts); it never travels as an argument, where ``ps`` and the
shell's history would show it.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from releaseflow.cli.common import EXIT_OK, Subparsers, database, run_async
from releaseflow.domain.access import ALL_PROJECTS, AccessError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from releaseflow.engine.users import UserView
    from releaseflow.settings import Settings
    from releaseflow.store.database import Database

PROJECT_HELP = f"the project ('{ALL_PROJECTS}', the default: every one)"


def register(commands: Subparsers) -> None:
    user = commands.add_parser("user", help="create and manage user accounts (web sign-in)")
    # Accounts live in this machine's database (no API route manages them): a saved login is ignored.
    user.set_defaults(machine=True, local_only="user accounts are kept in this machine's database")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a user with a role; asks for its password")
    create.add_argument("name", help="the user's name (lower case; what approvals and runs record)")
    _role_arguments(create)
    _password_argument(create)
    create.set_defaults(handler=create_user)

    listing = actions.add_parser("list", help="list users, their state and roles")
    listing.set_defaults(handler=list_users)

    grant = actions.add_parser("grant", help="give a user a role in a project (replaces its role there)")
    grant.add_argument("name")
    _role_arguments(grant)
    grant.set_defaults(handler=grant_role)

    revoke = actions.add_parser("revoke", help="take a user's role in a project away")
    revoke.add_argument("name")
    revoke.add_argument("--project", help=PROJECT_HELP)
    revoke.set_defaults(handler=revoke_role)

    disable = actions.add_parser("disable", help="stop a user signing in; ends its sessions now")
    disable.add_argument("name")
    disable.set_defaults(handler=disable_user)

    enable = actions.add_parser("enable", help="let a disabled user sign in again")
    enable.add_argument("name")
    enable.set_defaults(handler=enable_user)

    password = actions.add_parser("password", help="set a user's password; ends its sessions")
    password.add_argument("name")
    _password_argument(password)
    password.set_defaults(handler=set_password)


def _role_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", required=True, help="viewer, deployer or admin")
    parser.add_argument("--project", help=PROJECT_HELP)


def _password_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input (one line)"
    )


def read_password(from_stdin: bool) -> str:
    """The new password: standard input's first line, or asked twice on the terminal."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise AccessError(
            "no password: standard input is not a terminal, so it cannot be asked;"
            " give it on standard input with --password-stdin"
        )
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise AccessError("the two passwords differ: nothing changed")
    return first


def describe(view: UserView) -> str:
    return f"user '{view.name}' ({view.state}): {view.principal().describe()}"


def _act(settings: Settings, action: Callable[[Database], Awaitable[UserView]]) -> UserView:
    async def go() -> UserView:
        async with database(settings) as db:
            return await action(db)

    return run_async(go())


def create_user(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.engine import users
    from releaseflow.engine.clock import SystemClock

    grant = users.parse_grant(args.role, args.project)
    password = read_password(args.password_stdin)
    view = _act(
        settings,
        lambda db: users.create_user(
            db, SystemClock(), name=args.name, password=password, grants=[grant], created_by="command line"
        ),
    )
    print(f"created {describe(view)}")
    return EXIT_OK


def list_users(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.engine import users
    from releaseflow.wire.runs import iso

    async def go() -> list[UserView]:
        async with database(settings) as db:
            return await users.list_users(db)

    views = run_async(go())
    if not views:
        print("no users (releaseflow user create NAME --role ROLE makes one)")
    for view in views:
        print(
            f"{view.name:<20}  {view.state:<8}  created {iso(view.created_at):<20}"
            f"  {view.principal().describe()}"
        )
    return EXIT_OK


def grant_role(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.engine import users
    from releaseflow.engine.clock import SystemClock

    grant = users.parse_grant(args.role, args.project)
    view = _act(settings, lambda db: users.grant_role(db, SystemClock(), args.name, grant))
    print(f"granted: {describe(view)}")
    return EXIT_OK


def revoke_role(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.engine import users

    view = _act(settings, lambda db: users.revoke_role(db, args.name, args.project or ALL_PROJECTS))
    print(f"revoked: {describe(view)}")
    return EXIT_OK


def disable_user(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.engine import users
    from releaseflow.engine.clock import SystemClock

    view = _act(settings, lambda db: users.disable_user(db, SystemClock(), args.name))
    print(f"disabled {describe(view)}; its sessions ended")
    return EXIT_OK


def enable_user(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.engine import users

    view = _act(settings, lambda db: users.enable_user(db, args.name))
    print(f"enabled {describe(view)}")
    return EXIT_OK


def set_password(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.engine import users
    from releaseflow.engine.clock import SystemClock

    password = read_password(args.password_stdin)
    view = _act(settings, lambda db: users.set_password(db, SystemClock(), args.name, password))
    print(f"changed the password of {describe(view)}; its sessions ended")
    return EXIT_OK

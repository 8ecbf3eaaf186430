"""``login`` and ``logout``: save (after checking it) or forget the server and token the command line
acts through, in the user's config directory (a file readable by its owner only)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from releaseflow.cli.common import EXIT_OK, Subparsers, UsageError, run_async
from releaseflow.cli.render import untrusted

if TYPE_CHECKING:
    from releaseflow.settings import Settings


def register(commands: Subparsers) -> None:
    login = commands.add_parser(
        "login", help="check a token against a server and save both: commands then act through it"
    )
    login.add_argument("--server", dest="login_server", metavar="URL", help="the server's URL")
    login.add_argument("--token", dest="login_token", metavar="T", help="an API token of that server")
    login.set_defaults(handler=login_command, own_target=True)
    logout = commands.add_parser("logout", help="forget the saved server and token")
    logout.set_defaults(handler=logout_command, own_target=True)


def login_command(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.cli.remote import Server, Target, normal_url, save_login

    server = args.login_server or args.server_url or os.environ.get("RELEASEFLOW_SERVER")
    token = args.login_token or args.server_token or os.environ.get("RELEASEFLOW_TOKEN")
    if not server or not token:
        raise UsageError("releaseflow login needs --server URL and --token T")
    target = Target(normal_url(server), token)

    async def check() -> dict[str, str]:
        client = Server(target)
        try:
            found: dict[str, str] = (await client.call("GET", "/v1/login"))["token"]
            return {key: str(found[key]) for key in ("name", "role", "project")}
        except (KeyError, TypeError) as error:
            raise client.misunderstood(error) from None
        finally:
            await client.close()

    who = run_async(check())
    path = save_login(target, os.environ)
    print(
        f"logged in to {target.url} as token '{untrusted(who['name'])}'"
        f" ({who['role']} in {who['project']}); saved in {path}"
    )
    return EXIT_OK


def logout_command(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.cli.remote import RemoteError, login_file, saved_login

    path = login_file(os.environ)
    try:
        saved = saved_login(os.environ)
    except RemoteError:
        saved = None  # unreadable: removed all the same
    path.unlink(missing_ok=True)
    print(f"logged out of {saved.url}" if saved else "not logged in: nothing to forget")
    return EXIT_OK

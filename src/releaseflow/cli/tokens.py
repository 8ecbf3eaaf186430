"""API tokens: ``token create`` (the secret is printed once), ``token list``, ``token revoke``."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from releaseflow.cli.backend import open_backend
from releaseflow.cli.common import EXIT_OK, Subparsers, run_async
from releaseflow.cli.render import untrusted
from releaseflow.domain.access import ALL_PROJECTS, AccessError, Role

if TYPE_CHECKING:
    from releaseflow.engine.tokens import CreatedToken, TokenView
    from releaseflow.settings import Settings

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def register(commands: Subparsers) -> None:
    token = commands.add_parser("token", help="create, list and revoke API tokens")
    token.set_defaults(remote=True)
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a token; its secret is printed once")
    create.add_argument(
        "--project", required=True, help=f"the project it acts in ('{ALL_PROJECTS}': every one)"
    )
    create.add_argument("--role", required=True, help="viewer, deployer or admin")
    create.add_argument("--name", help="what it is for (default: ROLE for PROJECT)")
    create.add_argument(
        "--expires", help="a duration (30d, 12h, 90m, 2w, 45s) or an ISO date/time; default: never"
    )
    create.set_defaults(handler=create_token)

    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    listing.set_defaults(handler=list_tokens)

    revoke = actions.add_parser("revoke", help="revoke a token by its id or name")
    revoke.add_argument("token", help="the token's id or name")
    revoke.set_defaults(handler=revoke_token)


def parse_expiry(text: str, now: datetime) -> datetime:
    """An expiry from a duration after ``now`` or an ISO 8601 moment (UTC when it has no zone)."""
    text = text.strip()
    if match := _DURATION.match(text):
        return now + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AccessError(
            f"--expires '{text}' is neither a duration (30d, 12h, 90m, 2w, 45s) nor an ISO date/time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def create_token(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.engine.clock import SystemClock

    clock = SystemClock()
    role = Role.parse(args.role)
    expires = parse_expiry(args.expires, clock.now()) if args.expires else None
    name = args.name or f"{role} for {args.project}"

    async def go() -> CreatedToken:
        async with open_backend(args.target, settings) as backend:
            return await backend.create_token(name=name, project=args.project, role=role, expires_at=expires)

    created = run_async(go())
    view = created.view
    until = view.expires_at.isoformat() if view.expires_at else "never"
    print(
        f"created token {view.id} '{untrusted(view.name)}': {view.role} in {view.project_id}, expires {until}"
    )
    print("the secret (shown only now; it is not stored):")
    print(created.secret)
    return EXIT_OK


def list_tokens(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.wire.runs import iso

    async def go() -> list[TokenView]:
        async with open_backend(args.target, settings) as backend:
            return await backend.tokens()

    now = datetime.now(UTC)
    views = run_async(go())
    if not views:
        print("no tokens (releaseflow serve creates an admin token on its first start)")
    for view in views:
        expires = iso(view.expires_at) or "never"
        used = iso(view.last_used_at) or "never"
        print(
            f"{view.id}  {view.state(now):<7}  {view.role:<8}  {view.project_id:<12}"
            f"  expires {expires:<20}  last used {used:<20}  {untrusted(view.name)}"
        )
    return EXIT_OK


def revoke_token(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> TokenView:
        async with open_backend(args.target, settings) as backend:
            return await backend.revoke_token(args.token)

    view = run_async(go())
    print(f"revoked token {view.id} '{untrusted(view.name)}'")
    return EXIT_OK

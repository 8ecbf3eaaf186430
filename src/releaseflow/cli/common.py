"""What every command shares: exit codes, opening the database, running a coroutine."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar

from releaseflow.application import open_application
from releaseflow.settings import Settings
from releaseflow.store.database import Database

EXIT_OK = 0
# A run failed or was aborted, a file is invalid, the request conflicts with the current state.
EXIT_FAILED = 1
# The command line itself is wrong (unknown project, malformed --arg, ...): fix the command.
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

T = TypeVar("T")
# What ``add_subparsers`` returns; argparse has no public name for it.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@asynccontextmanager
async def database(settings: Settings, *, require_schema: bool = True) -> AsyncIterator[Database]:
    """The configured database; by default refuses one whose schema is not up to date."""
    async with open_application(settings, require_schema=require_schema) as application:
        yield application.db


def redact_url(url: str) -> str:
    """A database URL fit to print: the password, if any, replaced by ***."""
    scheme, separator, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not separator or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"

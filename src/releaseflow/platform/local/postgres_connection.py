"""Connections to PostgreSQL servers: where and as whom (``ConnectionTarget``), and a real check.

Managed clusters and external servers are reached the same way; a failed connection is explained in
words that say what to check.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from releaseflow.platform.local.postgres_tools import command_env

CONNECT_TIMEOUT = 5  # seconds; a check must answer quickly even when a host drops packets


# -- connections -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionTarget:
    """Where and as whom to connect; ``password`` never appears in a repr, a command line or a log."""

    host: str
    port: int
    dbname: str
    user: str
    password: str | None = field(default=None, repr=False)
    options: Mapping[str, str] = field(default_factory=dict)  # other libpq parameters (sslmode, ...)

    @classmethod
    def from_url(cls, url: str) -> ConnectionTarget:
        """Parse a libpq URL (``postgresql://user:password@host:port/dbname?sslmode=...``)."""
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a libpq URL starting with postgresql://")
        try:
            params = {key: str(value) for key, value in conninfo_to_dict(url).items()}
        except psycopg.ProgrammingError as error:
            raise ValueError(f"is not a valid libpq URL ({error})") from None
        port_text = params.pop("port", "5432") or "5432"
        if not port_text.isdigit():
            raise ValueError(f"has an invalid port {port_text!r}")
        user = params.pop("user", "") or os.environ.get("USER", "postgres")
        return cls(
            host=params.pop("host", "") or "localhost",
            port=int(port_text),
            dbname=params.pop("dbname", "") or user,
            user=user,
            password=params.pop("password", None),
            options=params,
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def conninfo(self, *, with_password: bool = True) -> str:
        params: dict[str, Any] = {
            **self.options,
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
        }
        if with_password and self.password is not None:
            params["password"] = self.password
        return make_conninfo("", **params)

    def url(self, *, redact: bool = False) -> str:
        from urllib.parse import quote, urlencode

        secret = "" if self.password is None else ":" + ("***" if redact else quote(self.password, safe=""))
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?{urlencode(sorted(self.options.items()))}" if self.options else ""
        return (
            f"postgresql://{quote(self.user, safe='')}{secret}@{host}:{self.port}/"
            f"{quote(self.dbname, safe='')}{query}"
        )

    def client_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for pg_dump/pg_restore: the password travels here, not on the command line."""
        values = {"PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT), **(extra or {})}
        if self.password is not None:
            values["PGPASSWORD"] = self.password
        return command_env(values)


@dataclass(frozen=True)
class Probe:
    ok: bool
    version: str | None = None
    error: str = ""


def explain_connection_error(error: BaseException, target: ConnectionTarget) -> str:
    """One sentence on what failed and what to check, from a libpq error."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    where = target.where
    lowered = text.lower()
    if "connection refused" in lowered:
        return (
            f"database down: connection to {where} refused; check that PostgreSQL runs there and "
            f"listens on port {target.port}"
        )
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        return (
            f"authentication failed for user '{target.user}' at {where}; check the user and password "
            "in the connection URL"
        )
    if "no password supplied" in lowered:
        return f"the server at {where} asks for a password for user '{target.user}' and none was given"
    if "does not exist" in lowered and "database" in lowered:
        return f"database '{target.dbname}' does not exist on {where}; create it or fix the URL"
    if "timeout expired" in lowered or isinstance(error, TimeoutError):
        return f"no answer from {where} within {CONNECT_TIMEOUT} s; check the host, port and firewall"
    if "could not translate host name" in lowered or "name or service not known" in lowered:
        return f"cannot resolve host '{target.host}'; check the host name in the connection URL"
    if "starting up" in lowered or "shutting down" in lowered or "recovery" in lowered:
        return f"the server at {where} does not accept connections yet: {first}"
    return f"cannot connect to {where} as '{target.user}': {first}"


async def probe(target: ConnectionTarget) -> Probe:
    """A real check: connect and run ``SELECT 1``; says why when that fails."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT + 2):
            connection = await psycopg.AsyncConnection.connect(
                target.conninfo(), connect_timeout=CONNECT_TIMEOUT, autocommit=True
            )
            async with connection:
                cursor = await connection.execute("SELECT 1, current_setting('server_version')")
                row = await cursor.fetchone()
    except (psycopg.Error, OSError, TimeoutError) as error:
        return Probe(False, error=explain_connection_error(error, target))
    if row is None or row[0] != 1:
        return Probe(False, error=f"the server at {target.where} answered SELECT 1 with {row!r}")
    return Probe(True, version=str(row[1]))

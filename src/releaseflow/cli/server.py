"""``serve`` (HTTP server and worker in one process) and ``worker`` (a worker alone)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from releaseflow.cli.common import EXIT_FAILED, EXIT_OK, Subparsers, database, redact_url, run_async
from releaseflow.domain.errors import ReleaseflowError
from releaseflow.processes import is_alive

if TYPE_CHECKING:
    from releaseflow.settings import Settings
    from releaseflow.store.database import Database

# The interface layers never import each other (docs/architecture.md), so the command line names the
# HTTP app's factory by its import path, then builds the app with this process's settings and hands
# the instance to uvicorn: nothing travels through environment variables.
APP_FACTORY = "releaseflow.api.app:create_app"
# Why serve and worker refuse --server: they are the server.
ON_THIS_MACHINE = "it serves this machine's database (run it where the server runs)"


def register(commands: Subparsers) -> None:
    serve = commands.add_parser("serve", help="migrate the database, then run the HTTP server and a worker")
    serve.add_argument("--host", help="address to listen on (default: RELEASEFLOW_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: RELEASEFLOW_PORT or 8080)")
    serve.add_argument(
        "--no-worker",
        dest="with_worker",
        action="store_false",
        help="serve HTTP only; `releaseflow worker` processes do the work (PostgreSQL)",
    )
    serve.set_defaults(handler=serve_command, machine=True, local_only=ON_THIS_MACHINE)

    worker = commands.add_parser(
        "worker", help="run a worker only (more workers share the work on PostgreSQL)"
    )
    worker.set_defaults(handler=worker_command, machine=True, local_only=ON_THIS_MACHINE)


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per webhook a Message node sends drowns what matters; failures are in the run itself.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))


def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    settings = _with_address(settings, args.host, args.port)
    configure_logging(settings)
    run_async(migrate_database(settings))
    return serve(settings, with_worker=args.with_worker)


def _with_address(settings: Settings, host: str | None, port: int | None) -> Settings:
    return dataclasses.replace(
        settings, host=host or settings.host, port=settings.port if port is None else port
    )


async def migrate_database(settings: Settings) -> None:
    from releaseflow.store.migrate import migrate

    async with database(settings, require_schema=False, create=True) as db:
        for migration in await migrate(db):
            print(f"applied migration {migration.version:04d}_{migration.name}", flush=True)
        if db.dialect == "sqlite":
            await _refuse_second_sqlite_server(db, settings)
        await _first_admin_token(db)
        print(f"message inbox: Message nodes post to {await inbox_address(settings, db)}/NAME", flush=True)


async def inbox_address(settings: Settings, db: Database) -> str:
    """The inbox address with the server's key in it: ``Message`` nodes post there without a token."""
    from releaseflow.engine.clock import SystemClock
    from releaseflow.engine.tokens import inbox_key

    return f"{settings.base_url}/inbox/{await inbox_key(db, SystemClock(), settings.inbox_key)}"


async def _first_admin_token(db: Database) -> None:
    """On a fresh database, an admin token for every project, printed this once (only its hash is
    kept: a lost one is replaced with `releaseflow token create`)."""
    from releaseflow.engine.clock import SystemClock
    from releaseflow.engine.tokens import create_first_admin_token

    created = await create_first_admin_token(db, SystemClock())
    if created is not None:
        print(
            "created the first API token (admin, every project); it is shown only now, keep it:\n"
            f"  {created.secret}\n"
            "sign in to the web interface with it, or with a user account:\n"
            "  releaseflow user create NAME --role admin   (asks for a password; --project P limits it)",
            flush=True,
        )


async def _refuse_second_sqlite_server(db: Database, settings: Settings) -> None:
    """SQLite serves one process: its worker takes back every lease at start, so a second server
    would steal the work of the first. Refuse when a worker process on this host is still alive."""
    from releaseflow.engine import queries

    since = datetime.now(UTC) - timedelta(seconds=settings.worker.lease_seconds)
    for worker in await queries.workers_seen_since(db, since):
        if worker.hostname == socket.gethostname() and worker.pid != os.getpid() and is_alive(worker.pid):
            raise ReleaseflowError(
                f"another releaseflow process (pid {worker.pid}) serves {redact_url(settings.database_url)};"
                " SQLite serves one process: stop it first, or use PostgreSQL for several"
            )


def serve(settings: Settings, *, with_worker: bool = True) -> int:
    """Serve until Ctrl-C or SIGTERM; both stop the server and the worker cleanly (exit 0)."""
    import uvicorn
    from uvicorn.importer import import_from_string

    listener = _listen(settings.host, settings.port)
    # The socket is listening before the worker starts, so a Message node aimed at this server's own
    # inbox connects at once instead of failing while the server starts.
    create_app = import_from_string(APP_FACTORY)
    config = uvicorn.Config(
        create_app(settings, with_worker=with_worker),
        log_level=settings.log_level if settings.log_level != "info" else "warning",
        access_log=False,
        lifespan="on",
    )
    print(
        f"releaseflow serving on {settings.base_url} (database {redact_url(settings.database_url)});"
        " Ctrl-C stops",
        flush=True,
    )
    # uvicorn stops gracefully on SIGINT/SIGTERM and then raises the signal again; end quietly then.
    previous = signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        uvicorn.Server(config).run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        listener.close()
    print("releaseflow stopped", flush=True)
    return EXIT_OK


def _exit_quietly(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _listen(host: str, port: int) -> socket.socket:
    try:
        return socket.create_server((host, port), reuse_port=False)
    except OSError as error:
        raise ReleaseflowError(
            f"cannot listen on {host}:{port}: {error.strerror or error} (set --port or RELEASEFLOW_PORT)"
        ) from error


log = logging.getLogger(__name__)


def worker_command(args: argparse.Namespace, settings: Settings) -> int:
    """Work until Ctrl-C or SIGTERM (exit 0). Database outages are ridden out inside the worker; any
    other error ends it with exit status 1, so that a supervisor restarts it."""
    if settings.database_url.startswith("sqlite:"):
        # A SQLite worker takes back every lease at start (no other process may hold one), so a second
        # process would steal the work of the server's own worker.
        raise ReleaseflowError(
            "a separate worker needs PostgreSQL (RELEASEFLOW_DATABASE_URL=postgresql://...): SQLite serves"
            " one process, and `releaseflow serve` already runs a worker"
        )
    configure_logging(settings)
    import asyncio

    from releaseflow.application import open_application

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with open_application(settings) as application:
            worker = application.worker()
            print(
                f"releaseflow worker {worker.id} on {redact_url(settings.database_url)}; Ctrl-C stops",
                flush=True,
            )
            await worker.run(stop)
        print("worker stopped", flush=True)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_async(go())
    except ReleaseflowError:
        raise  # a clear message (cannot connect, schema not migrated); the CLI prints it
    except Exception:
        log.critical("the worker stopped; exiting so that its supervisor restarts it", exc_info=True)
        return EXIT_FAILED
    return EXIT_OK

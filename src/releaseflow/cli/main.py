"""The ``releaseflow`` command: parse the command line, read the settings once, run a command.

Exit codes: 0 done; 1 a run failed or was aborted, a file is invalid, or the request conflicts with
the current state; 2 the command line is wrong (unknown names, malformed values); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

# Each command module imports what its handlers need inside them: these imports are cheap.
from releaseflow.cli import (
    approvals,
    configuration,
    db,
    demo,
    flows,
    insights,
    login,
    logs,
    notifications,
    pipelines,
    plan,
    resume,
    rollback,
    runs,
    server,
    state,
    tokens,
    triggers,
    users,
)
from releaseflow.cli.backend import refuse_remote
from releaseflow.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from releaseflow.cli.render import error_lines
from releaseflow.domain.errors import NotFoundError, ReleaseflowError, ValidationError

if TYPE_CHECKING:
    from releaseflow.settings import Settings

Handler = Callable[[argparse.Namespace, "Settings"], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="releaseflow",
        description="Self-hosted release orchestration: pipelines, stages and release flows.",
        epilog="Settings come from RELEASEFLOW_* environment variables; the flags above override them.",
    )
    parser.add_argument("--data-dir", help="data directory (default: RELEASEFLOW_DATA_DIR or ./data)")
    parser.add_argument(
        "--database-url",
        help="sqlite:///PATH or postgresql://... (default: RELEASEFLOW_DATABASE_URL or SQLite in data dir)",
    )
    parser.add_argument(
        "--server",
        dest="server_url",
        metavar="URL",
        help="act through this releaseflow server instead of a local database (default: RELEASEFLOW_SERVER,"
        " or the saved login)",
    )
    parser.add_argument(
        "--token",
        dest="server_token",
        metavar="T",
        help="the API token sent to --server (default: RELEASEFLOW_TOKEN or the login)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups = (
        server,
        configuration,
        flows,
        pipelines,
        runs,
        approvals,
        rollback,
        triggers,
        state,
        logs,
        notifications,
        db,
        demo,
    )
    for group in (*groups, insights, plan, resume, tokens, login, users):
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A status symbol must never crash a command on a terminal that cannot show it.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    try:
        return _run(argv)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _reader_went_away()
    except ReleaseflowError as error:
        print("\n".join(error_lines(str(error))), file=sys.stderr)
        return EXIT_USAGE if isinstance(error, ValidationError | NotFoundError | UsageError) else EXIT_FAILED


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    from releaseflow.settings import Settings

    settings = Settings.from_env(os.environ, data_dir=args.data_dir, database_url=args.database_url)
    if not getattr(args, "own_target", False):
        from releaseflow.cli.remote import target_of

        # A saved login is for the commands that act through a server; serve, worker, db and demo
        # belong to this machine and ignore it (an explicit --server still makes them refuse).
        machine = getattr(args, "machine", False)
        args.target = target_of(args.server_url, args.server_token, os.environ, use_saved=not machine)
        if args.target is not None:
            refuse_remote(args, args.command)
    code = handler(args, settings)
    # Flushed here, so that a reader that went away is noticed while the handler below can end quietly.
    sys.stdout.flush()
    return code


def _reader_went_away() -> int:
    """Output piped into ``head`` (or any reader that stops early): end quietly, like other tools.

    Python would report the broken pipe again when it flushes stdout at exit; point stdout at
    /dev/null so that flush has nowhere to fail.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

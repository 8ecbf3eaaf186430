"""``releaseflow demo``: everything a newcomer needs to see releaseflow work, in one command.

The first time, it creates the demo service's git repository, writes the demo configuration (with
the real repository path, ports and inbox address), migrates, applies it, starts a first run of
Development (build main, deploy it), says what to try next, and serves. Every later time it only
serves: the configuration a person edited, the runs and the services already deployed are theirs
(the worker adopts the services as it starts, and the command says which). ``--reset`` stops what
the old demo runs, removes its data and sets it up afresh.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from releaseflow.cli.common import Subparsers, database, run_async, sqlite_path
from releaseflow.cli.render import short_id
from releaseflow.cli.server import configure_logging, inbox_address, migrate_database, serve
from releaseflow.demo import CONFIG_FILE, app_files, demo_files, render, service_ports
from releaseflow.domain.errors import NotFoundError, ReleaseflowError

if TYPE_CHECKING:
    from releaseflow.settings import Settings

PROJECT = "demo"
PIPELINE = "web"


def register(commands: Subparsers) -> None:
    demo = commands.add_parser("demo", help="set up a demo pipeline and a first run (once), then serve it")
    demo.add_argument(
        "--reset",
        action="store_true",
        help="stop what the demo runs, remove its data (runs, edits, services) and set it up afresh",
    )
    demo.set_defaults(handler=demo_command, machine=True, local_only="it builds a demo on this machine")


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings)
    if args.reset:
        reset_demo(settings)
    ports = service_ports(settings.port)
    folder = settings.data_dir / "demo"
    repository = ensure_app_repository(folder / "app")
    run_async(migrate_database(settings))
    inbox = run_async(_inbox(settings))
    if run_async(_is_set_up(settings)):
        print(run_async(_welcome_back(settings, folder)), flush=True)
        return serve(settings)
    config_path = write_demo_files(folder, inbox=inbox, repository=repository, ports=ports)
    run_id = run_async(_prepare(settings, config_path, inbox))
    print(_next_steps(settings, config_path, repository, ports, run_id), flush=True)
    return serve(settings)


def reset_demo(settings: Settings) -> None:
    """Stop what the old demo runs and remove its data: the database, the demo's files, the
    platform's folders. Refused while a server uses the data, and on a database this command cannot
    remove (PostgreSQL)."""
    from releaseflow.application import managed_addons_folder
    from releaseflow.cli.server import _refuse_second_sqlite_server
    from releaseflow.demo.reset import stop_processes_under

    path = sqlite_path(settings.database_url)
    if path is None:
        raise ReleaseflowError(
            "releaseflow demo --reset removes the demo's SQLite database; with"
            " RELEASEFLOW_DATABASE_URL set, drop the demo project's data yourself"
        )
    if path.exists():

        async def check() -> None:
            async with database(settings, require_schema=False) as db:
                await _refuse_second_sqlite_server(db, settings)

        run_async(check())
    local = settings.data_dir / "local"
    folders = [
        settings.data_dir / "demo",
        local,
        settings.data_dir / "docker",
        managed_addons_folder(settings),
    ]
    stopped = stop_processes_under(folders)
    removed = []
    for folder in folders:
        # The addons' folder may lie inside another one of the list, removed just before.
        if folder.exists():
            shutil.rmtree(folder)
            removed.append(folder)
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            file.unlink()
            removed.append(file)
    print(
        f"demo reset: stopped {len(stopped)} process(es), removed "
        + (", ".join(str(item) for item in removed) or "nothing"),
        flush=True,
    )


async def _is_set_up(settings: Settings) -> bool:
    """The demo was set up before when its project exists (apply ran; its first run was started)."""
    from releaseflow.engine import queries

    async with database(settings) as db:
        try:
            await queries.resolve_project(db, PROJECT)
        except NotFoundError:
            return False
    return True


async def _welcome_back(settings: Settings, folder: Path) -> str:
    """What a later ``releaseflow demo`` says: nothing was redone; what each stage runs now."""
    from releaseflow.cli.state import describe
    from releaseflow.engine import queries

    async with database(settings) as db:
        views = await queries.release_state(db, PROJECT, PIPELINE, None)
        runs = await queries.list_runs(db, PROJECT, PIPELINE, "Development", limit=1)
    command = _command(settings)
    lines = [
        "",
        f"releaseflow demo was set up before ({folder}): serving it again, nothing redone —",
        f"  your edits of {folder}/*.yaml, your commits and every run are kept; no new run started",
    ]
    if views:
        lines.append("  what the demo runs (the worker adopts these services as it starts):")
        lines.extend(
            f"    {view.stage:<12} {view.resource_id:<16} {describe(view.artifact)}"
            f"  (run {short_id(view.run_id)})"
            for view in views
        )
    else:
        lines.append("  nothing is deployed yet")
    if runs:
        lines.append(f"  latest Development run: {runs[0].display_name} ({runs[0].status})")
    lines += [
        f"  start afresh (stops the services, removes runs and edits): {command} demo --reset",
        "",
    ]
    return "\n".join(lines)


def _command(settings: Settings) -> str:
    command = "releaseflow"
    if settings.data_dir != Path("data").resolve():
        command += f" --data-dir {settings.data_dir}"
    return command


def ensure_app_repository(folder: Path) -> Path:
    """The demo service's git repository; created with its first commit ("v1") when absent.

    An existing repository is left alone: it holds the commits a person made while trying the demo.
    """
    if (folder / ".git").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in app_files().items():
        (folder / name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    git = [
        "git",
        "-C",
        str(folder),
        "-c",
        "user.name=releaseflow demo",
        "-c",
        "user.email=demo@releaseflow.invalid",
    ]
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "v1"]):
        subprocess.run([*git, *command], check=True, capture_output=True)
    return folder


def write_demo_files(folder: Path, *, inbox: str, repository: Path, ports: dict[str, int]) -> Path:
    """Write the demo's configuration and flows into ``folder`` with the real address, path and ports.

    A file that exists is left alone: it may hold a person's edits.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in demo_files().items():
        if (folder / name).exists():
            continue
        text = render(source.read_text(encoding="utf-8"), inbox=inbox, repository=repository, ports=ports)
        (folder / name).write_text(text, encoding="utf-8")
    return folder / CONFIG_FILE


async def _inbox(settings: Settings) -> str:
    async with database(settings) as db:
        return await inbox_address(settings, db)


async def _prepare(settings: Settings, config_path: Path, inbox: str) -> str:
    from releaseflow.cli.local_backend import run_engine
    from releaseflow.engine.clock import SystemClock
    from releaseflow.engine.commands import RunRequest
    from releaseflow.engine.configuration import apply_configuration, load_configuration_file

    config = load_configuration_file(config_path)
    async with database(settings) as db:
        plan = await apply_configuration(db, config, SystemClock())
        print(plan.render() if plan.has_changes else "demo configuration already applied", flush=True)
        run = await run_engine(db, settings).start_run(
            PROJECT,
            PIPELINE,
            "Development",
            RunRequest(
                name="First demo run",
                description="started by releaseflow demo: build main and deploy it",
                arguments={"inbox": inbox},
                triggered_by="demo",
            ),
        )
    return run.id


def _next_steps(
    settings: Settings, config_path: Path, repository: Path, ports: dict[str, int], run_id: str
) -> str:
    command = _command(settings)
    tries = [
        (f"{command} show {short_id(run_id)}", "the first run: build, then deploy to Development"),
        (f"curl http://127.0.0.1:{ports['Development']}/", "Development answers with the version it runs"),
        (f"{command} run {PIPELINE} Staging --follow", "promote to Staging and migrate its database"),
        (f"{command} run {PIPELINE} Production --follow", "back up, migrate, promote to Production"),
        (f"curl http://127.0.0.1:{ports['Production']}/", "Production answers"),
        (f"{command} state {PIPELINE}", "what each stage runs, and which run put it there"),
        (f"echo v2 > {repository}/VERSION", "a new version ..."),
        (f"git -C {repository} commit -qam v2", "... committed on main"),
        (f"{command} triggers {PIPELINE} Development", "the commit started a run: it builds and deploys v2"),
        (f"{command} run {PIPELINE} Staging --follow", "then Staging and Production by hand"),
        (f"{command} runs {PIPELINE} Production", "every run is kept"),
        (f"{command} rollback <run-id-prefix>", "preview, confirm: Production back to what it ran then"),
        (f"{command} pipelines", "per stage: the last run, the pin, what to do next"),
        (
            f'curl -H "Authorization: Bearer $TOKEN" {settings.base_url}/inbox/production',
            "the message Production's flow sent (TOKEN: printed at the first start)",
        ),
        (f"{command} apply -f {config_path}", f"after editing {config_path.parent}/*.yaml"),
    ]
    width = max(len(line) for line, _ in tries)
    stages = ", ".join(f"{stage} on :{port}" for stage, port in ports.items())
    return "\n".join(
        [
            "",
            "releaseflow demo is ready",
            f"  server    {settings.base_url}  (health: {settings.base_url}/healthz)",
            f"  web       {settings.base_url}/web/  (sign in with the API token printed above, or a user:"
            f" {_command(settings)} user create NAME --role admin)",
            f"  API docs  {settings.base_url}/docs",
            f"  data      {settings.data_dir}",
            f"  app repo  {repository} (branch main)",
            f"  services  {stages}",
            f"  demo run  {run_id} of {PIPELINE}/Development (project {PROJECT})",
            "",
            "Try next, in another terminal in this directory:",
            *(f"  {line.ljust(width)}   # {why}" for line, why in tries),
            "",
        ]
    )

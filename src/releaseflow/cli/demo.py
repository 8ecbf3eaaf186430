"""``releaseflow demo``: everything a newcomer needs to see releaseflow work, in one command.

It creates the demo service's git repository, prepares the data directory, migrates, applies the
demo configuration (with the real repository path, ports and inbox address), starts a first run of
Development (build main, deploy it), says what to try next, and serves.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from releaseflow.cli.common import Subparsers, database, run_async
from releaseflow.cli.render import short_id
from releaseflow.cli.server import configure_logging, migrate_database, serve
from releaseflow.demo import CONFIG_FILE, app_files, demo_files, render, service_ports
from releaseflow.engine.clock import SystemClock
from releaseflow.engine.commands import Engine, RunRequest
from releaseflow.engine.configuration import apply_configuration, load_configuration_file
from releaseflow.settings import Settings

PROJECT = "demo"
PIPELINE = "web"


def register(commands: Subparsers) -> None:
    demo = commands.add_parser("demo", help="set up a demo pipeline, start a first run, and serve")
    demo.set_defaults(handler=demo_command)


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings)
    inbox = f"{settings.base_url}/inbox"
    ports = service_ports(settings.port)
    folder = settings.data_dir / "demo"
    repository = ensure_app_repository(folder / "app")
    config_path = write_demo_files(folder, inbox=inbox, repository=repository, ports=ports)
    run_async(migrate_database(settings))
    run_id = run_async(_prepare(settings, config_path, inbox))
    print(_next_steps(settings, config_path, repository, ports, run_id), flush=True)
    return serve(settings)


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

    Written anew each time, so that they always match the server's port.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in demo_files().items():
        text = render(source.read_text(encoding="utf-8"), inbox=inbox, repository=repository, ports=ports)
        (folder / name).write_text(text, encoding="utf-8")
    return folder / CONFIG_FILE


async def _prepare(settings: Settings, config_path: Path, inbox: str) -> str:
    config = load_configuration_file(config_path)
    async with database(settings) as db:
        plan = await apply_configuration(db, config, SystemClock())
        print(plan.render() if plan.has_changes else "demo configuration already applied", flush=True)
        run = await Engine(db, SystemClock()).start_run(
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
    command = "releaseflow"
    if settings.data_dir != Path("data").resolve():
        command += f" --data-dir {settings.data_dir}"
    tries = [
        (f"{command} show {short_id(run_id)}", "the first run: build, then deploy to Development"),
        (f"curl http://127.0.0.1:{ports['Development']}/", "Development answers with the version it runs"),
        (f"{command} run {PIPELINE} Staging --follow", "promote to Staging and migrate its database"),
        (f"{command} run {PIPELINE} Production --follow", "back up, migrate, promote to Production"),
        (f"curl http://127.0.0.1:{ports['Production']}/", "Production answers"),
        (f"{command} state {PIPELINE}", "what each stage runs, and which run put it there"),
        (f"echo v2 > {repository}/VERSION", "a new version ..."),
        (f"git -C {repository} commit -qam v2", "... committed on main"),
        (f"{command} run {PIPELINE} Development --follow", "build and deploy it; then Staging, Production"),
        (f"{command} runs {PIPELINE} Production", "every run is kept"),
        (f"curl {settings.base_url}/inbox/production", "the message Production's flow sent"),
        (f"{command} apply -f {config_path}", f"after editing {config_path.parent}/*.yaml"),
    ]
    width = max(len(line) for line, _ in tries)
    stages = ", ".join(f"{stage} on :{port}" for stage, port in ports.items())
    return "\n".join(
        [
            "",
            "releaseflow demo is ready",
            f"  server    {settings.base_url}  (health: {settings.base_url}/healthz)",
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

"""The demo that ``releaseflow demo`` sets up: project ``demo``, pipeline ``web``.

A small web service lives in a git repository the demo creates (``data/demo/app``); a local build
service builds it; Development, Staging and Production each run their own copy on their own port;
migration jobs run against managed PostgreSQL addons; the release flows build and deploy
(Development), promote and migrate (Staging), and back up, promote, migrate and promote (Production).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

CONFIG_FILE = "demo.yaml"
FLOW_FILES = ("development.yaml", "staging.yaml", "production.yaml")
APP_FILES = ("app.py", "migrate.sql", "VERSION")
STAGES = ("Development", "Staging", "Production")
# The flows' default for ${args.inbox}; ``releaseflow demo`` rewrites it to the server's real address.
DEFAULT_INBOX = "http://127.0.0.1:8080/inbox"


def demo_files() -> dict[str, Traversable]:
    """The configuration and the release flows it names, by file name."""
    folder = resources.files(__name__)
    return {name: folder / name for name in (CONFIG_FILE, *FLOW_FILES)}


def app_files() -> dict[str, Traversable]:
    """The first version of the demo's web service, by file name."""
    folder = resources.files(__name__) / "app"
    return {name: folder / name for name in APP_FILES}


def service_ports(server_port: int) -> dict[str, int]:
    """Each stage's copy of the web service listens next to the server: port + 1, + 2, + 3."""
    return {stage: server_port + offset for offset, stage in enumerate(STAGES, start=1)}


def render(text: str, *, inbox: str, repository: Path, ports: Mapping[str, int]) -> str:
    """A demo file with the real inbox address, repository path and ports filled in."""
    text = text.replace(DEFAULT_INBOX, inbox).replace("__APP_REPOSITORY__", str(repository))
    for stage, port in ports.items():
        text = text.replace(f"__PORT_{stage.upper()}__", str(port))
    return text

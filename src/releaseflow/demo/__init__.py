"""The demo configuration that ``releaseflow demo`` applies: project ``demo``, pipeline ``web``.

Its release flows use only node kinds that run for real without infrastructure: workflows,
``Message`` nodes (raw webhooks to the server's own inbox) and an ``Approval``.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

CONFIG_FILE = "demo.yaml"
FLOW_FILES = ("development.yaml", "staging.yaml", "production.yaml")
# The flows' default for ${args.inbox}; ``releaseflow demo`` rewrites it to the server's real address.
DEFAULT_INBOX = "http://127.0.0.1:8080/inbox"


def demo_files() -> dict[str, Traversable]:
    """The demo's files by name: the configuration and the release flows it names."""
    folder = resources.files(__name__)
    return {name: folder / name for name in (CONFIG_FILE, *FLOW_FILES)}

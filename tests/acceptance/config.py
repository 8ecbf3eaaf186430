"""The configuration acceptance tests apply: flows of Message and Approval nodes aimed at the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PROJECT = "acme"
# The inbox key of every test installation (Releaseflow.env sets it): Message nodes post with it.
INBOX_KEY = "acceptance-inbox-key"


def message(ref: str, url: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "Message",
        "ref": ref,
        "spec": {"kind": "RAW_WEBHOOK", "spec": {"webhookUrl": url, "message": text}},
        **extra,
    }


def workflow(kind: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Workflow", "spec": {"type": kind, "steps": list(steps)}}


def flow(root: dict[str, Any], **arguments: str) -> dict[str, Any]:
    return {"apiVersion": "v1.2", "arguments": arguments, "spec": root}


def write_config(folder: Path, server_url: str) -> Path:
    """``main``: Development succeeds, Staging fails (HTTP 404), Production waits for an approval.
    ``relay``: Development sends to ``${args.target}`` (a test's slow endpoint), then to the inbox.
    """
    inbox = f"{server_url}/inbox/{INBOX_KEY}"
    quick = {"settings": {"maxAttempts": 3, "backoff": {"type": "fixed", "delay": 0.2}}}
    development = flow(
        workflow(
            "sequential",
            message("hello", f"{inbox}/dev", "hello from ${args.who}"),
            workflow(
                "parallel", message("left", f"{inbox}/dev", "left"), message("right", f"{inbox}/dev", "right")
            ),
        ),
        who="acceptance",
    )
    staging = flow(
        workflow(
            "sequential",
            message("broken", f"{server_url}/no-such-route", "lost"),
            message("never", f"{inbox}/stg", "x"),
        )
    )
    production = flow(
        workflow(
            "sequential",
            message("before", f"{inbox}/prod", "asking for approval"),
            {"kind": "Approval", "ref": "gate", "spec": {"amount": 1}},
            message("after", f"{inbox}/prod", "approved by ${refs.gate.approvals}"),
        )
    )
    relay = flow(
        workflow(
            "sequential",
            message("slow", "${args.target}", "hold on", **quick),
            message("then", f"{inbox}/relay", "done"),
        ),
        target="http://127.0.0.1:9/unset",
    )
    config = {
        "projects": [
            {
                "id": PROJECT,
                "resources": {"services": [{"id": "api", "spec": {"runCommand": "sleep infinity"}}]},
                "pipelines": [
                    {
                        "id": "main",
                        "stages": [
                            {"name": "Development", "resources": ["api"], "releaseFlow": development},
                            {"name": "Staging", "releaseFlow": staging},
                            {"name": "Production", "releaseFlow": production},
                        ],
                    },
                    {"id": "relay", "stages": [{"name": "Development", "releaseFlow": relay}]},
                ],
            }
        ]
    }
    path = folder / "releaseflow.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path

"""Parsed templates of runs, cached: a run's document never changes once the run exists."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from releaseflow.domain.secret_values import secret_texts
from releaseflow.domain.template import Node, Template
from releaseflow.domain.template_parser import parse_template
from releaseflow.engine.secrets import SecretBox, SecretKeyError, open_arguments
from releaseflow.store.records import RunRecord


class TemplateCache:
    """Parsed templates of runs, the ids of their node rows and their decrypted secret arguments
    (none of which ever change once the run exists)."""

    def __init__(self, capacity: int = 256, *, secrets: SecretBox | None = None) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, Template] = OrderedDict()
        self._node_ids: OrderedDict[str, dict[str, str]] = OrderedDict()
        # The key of secret arguments (None: this process cannot seal or open them).
        self.secrets = secrets
        self._opened: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def arguments(self, run: RunRecord) -> Mapping[str, Any]:
        """The run's arguments as nodes see them: secret ones decrypted."""
        if not run.secret_arguments:
            return run.arguments
        opened = self._opened.get(run.id)
        if opened is None:
            if self.secrets is None:
                raise SecretKeyError(f"run {run.id} has secret arguments and this process has no secret key")
            opened = open_arguments(run.arguments, run.secret_arguments, self.secrets)
            self._opened[run.id] = opened
            if len(self._opened) > self._capacity:
                self._opened.popitem(last=False)
        return opened

    def secret_values(self, run: RunRecord) -> dict[str, str]:
        """The run's secret values as text, by key: what is hidden wherever resolved code is kept."""
        if not run.secret_arguments:
            return {}
        return secret_texts(self.arguments(run), run.secret_arguments)

    def node_ids(self, run_id: str) -> dict[str, str] | None:
        """The ids of a run's node rows by path, if known."""
        return self._node_ids.get(run_id)

    def remember_node_ids(self, run_id: str, ids: dict[str, str]) -> None:
        self._node_ids[run_id] = ids
        if len(self._node_ids) > self._capacity:
            self._node_ids.popitem(last=False)

    def for_run(self, run: RunRecord) -> Template:
        """The run's template; its document is decoded only when the cache misses."""
        template = self._entries.get(run.id)
        if template is not None:
            self._entries.move_to_end(run.id)
            return template
        return self.get(run.id, run.document)

    def get(self, run_id: str, document: Mapping[str, Any]) -> Template:
        template = self._entries.get(run_id)
        if template is None:
            template = parse_template(document)
            self._entries[run_id] = template
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(run_id)
        return template


def node_code(node: Node) -> dict[str, Any]:
    """What a node shows as its code: its JSON, without the steps of a workflow (they are nodes)."""
    document = dict(node.document)
    if node.is_workflow and isinstance(document.get("spec"), Mapping):
        document["spec"] = {key: value for key, value in document["spec"].items() if key != "steps"}
    return document

"""The published JSON Schema (draft 2020-12) of the release flow format.

Generated from ``template_format``, the same description the parser reads, so the two agree on node
kinds, fields and enumerations. The schema is for editors and CI; the parser remains the authority
for what it cannot express (unique refs, nesting limits, expression syntax, resource existence).
"""

from __future__ import annotations

from typing import Any

from releaseflow.domain.template_fields import to_json_schema
from releaseflow.domain.template_format import (
    DOCUMENT,
    NODE_KINDS,
    NORTHFLANK_SCHEMA_URL,
    RELEASEFLOW_SCHEMA_URL,
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def release_flow_json_schema() -> dict[str, Any]:
    """A fresh copy of the schema (callers may change it freely)."""
    node_defs = {f"node.{name}": to_json_schema(kind.node_fields()) for name, kind in NODE_KINDS.items()}
    any_node = {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": list(NODE_KINDS)}},
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": name}}, "required": ["kind"]},
                "then": {"$ref": f"#/$defs/node.{name}"},
            }
            for name in NODE_KINDS
        ],
    }
    schema = to_json_schema(DOCUMENT)
    # The root node must be a workflow; nested steps may be any kind (``NodeRef`` -> #/$defs/node).
    schema["properties"]["spec"] = {"$ref": "#/$defs/node.Workflow"}
    return {
        "$schema": DRAFT,
        "$id": RELEASEFLOW_SCHEMA_URL,
        "title": "releaseflow release flow template",
        "description": (
            "A release flow: a tree of workflows and nodes run for one pipeline stage. Compatible with "
            f'Northflank\'s format; documents may declare "$schema": "{NORTHFLANK_SCHEMA_URL}" '
            f'or "{RELEASEFLOW_SCHEMA_URL}". Any string field of a node may be a ${{...}} expression, '
            "checked when the run resolves it."
        ),
        **schema,
        "$defs": {"node": any_node, **node_defs},
    }

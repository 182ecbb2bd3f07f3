"""The published JSON Schema, generated from the models (never written by hand).

pydantic's output is adjusted where the models accept more than their annotations say, so that
an editor never flags a spec `llmspec validate` accepts (tests/test_schema.py checks both ways
on a corpus of mutated specs):

- `extends` may be one string as well as a list (the loader wraps it);
- with `extends`, the top-level keys are not required in this file: a base file may give them;
- mappings keyed by identifiers (`sources`, `columns`) refuse other keys, as the models do.
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_ID = "https://llmspec.dev/schema/llmspec-1.json"
COMMITTED_SCHEMA = Path(__file__).with_name("llmspec.schema.json")


def json_schema() -> dict:
    from .models import ProjectSpec

    schema = ProjectSpec.model_json_schema(mode="validation")
    _adjust(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "llmspec project spec",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def _adjust(schema: dict) -> None:
    props = schema["properties"]
    listed = props["extends"]
    item = listed["items"]
    props["extends"] = {
        **{k: v for k, v in listed.items() if k not in ("type", "items")},
        "anyOf": [{"type": "array", "items": item}, item],
    }
    required = schema.pop("required")
    schema["if"] = {"not": {"required": ["extends"]}}
    schema["then"] = {"required": required}
    _close_pattern_mappings(schema)


def _close_pattern_mappings(node) -> None:
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_pattern_mappings(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_mappings(value)


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"

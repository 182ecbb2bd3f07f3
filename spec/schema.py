"""The published JSON Schema, generated from the models (never written by hand)."""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_ID = "https://llmspec.dev/schema/llmspec-1.json"
COMMITTED_SCHEMA = Path(__file__).with_name("llmspec.schema.json")


def json_schema() -> dict:
    from .models import ProjectSpec

    schema = ProjectSpec.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "llmspec project spec",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"

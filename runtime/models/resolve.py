"""Where the base model's weights are: a built-in model (built or located here), a GGUF file
(converted once into a cached folder), a local folder, or a Hugging Face hub id that must
already be in the local cache (nothing downloads); and the content fingerprint that names it.

Fingerprints are content hashes, stat-cached like source files, so overwriting a folder's
``model.safetensors`` or swapping the GGUF file retrains, and an unchanged model costs a
``stat`` per file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from llmspec.spec.builtin_models import BUILTIN_MODELS
from llmspec.spec.errors import Diagnostic, LlmspecError, Pos, did_you_mean

from llmspec.runtime.engine.file_hashes import HashCache

from . import gguf
from .tinymodel import BUILDER_VERSION, TINY_MODEL_ID


def resolve_base_model(base: dict[str, Any], base_dir: Path | str,
                       locate: Callable[[tuple], Pos] | None = None) -> str:
    """The path of a local model (built-in or folder), else the hub id. ``base`` is the Plan's
    ``base_model`` ({id, revision, tokenizer, fingerprint})."""
    model_id = base["id"]
    if model_id == gguf.SMOLLM2_ID or gguf.is_gguf_id(model_id):
        ref = describe(model_id, Path(base_dir), pos=locate(("base_model", "id")) if locate else None)
        return str(materialize(ref))
    if model_id.startswith("builtin:"):
        from llmspec.runtime.models.tinymodel import resolve_builtin

        return str(resolve_builtin(model_id))
    local = Path(base_dir) / model_id
    if model_id.startswith((".", "/")) or local.is_dir():
        if not local.is_dir():
            raise LlmspecError(Diagnostic("model-not-found", f"base model folder '{model_id}' does not exist",
                                          locate(("base_model", "id")) if locate else None))
        return str(local.resolve())
    return model_id


def base_model_ref(spec) -> dict[str, Any]:
    """The ``base_model`` mapping a Plan carries, from a spec (for commands that have no Plan)."""
    return {"id": spec.base_model.id, "revision": spec.base_model.revision, "tokenizer": spec.base_model.tokenizer}


def load_tokenizer_offline(base: dict[str, Any], base_dir: Path | str):
    """The base model's tokenizer from this machine (never downloaded), or None when absent."""
    from llmspec.runtime.engine.offline import go_offline

    go_offline()
    try:
        from transformers import AutoTokenizer

        source = base.get("tokenizer") or resolve_base_model(base, base_dir)
        local = Path(base_dir) / source
        return AutoTokenizer.from_pretrained(str(local) if local.is_dir() else source, local_files_only=True)
    except LlmspecError:
        raise
    except Exception:  # not cached here: callers fall back (chars / 4) and say so
        return None


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

"""Where the base model's weights are: a built-in model (built or located here), a local
folder, or a Hugging Face hub id that must already be in the local cache (nothing downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from llmspec.spec.errors import Diagnostic, LlmspecError, Pos


def resolve_base_model(base: dict[str, Any], base_dir: Path | str,
                       locate: Callable[[tuple], Pos] | None = None) -> str:
    """The path of a local model (built-in or folder), else the hub id. ``base`` is the Plan's
    ``base_model`` ({id, revision, tokenizer, fingerprint})."""
    model_id = base["id"]
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

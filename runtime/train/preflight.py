"""Configs Axolotl's schema accepts but that cannot train, caught at plan time with the spec line.

- A count that must be at least 1 set to 0 (or less) through the `training.axolotl` escape
  hatch: Axolotl 0.19 validates ``micro_batch_size: 0`` and then divides by it at apply.
- A hub model that is not in the local Hugging Face cache: llmspec never downloads at run
  time (training runs offline), so apply would fail after cleaning and formatting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmspec.spec.errors import Diagnostic

if TYPE_CHECKING:
    from llmspec.spec.load import LoadedSpec

# Axolotl keys that the run divides by or loops over: 0 validates but cannot train.
POSITIVE_KEYS = ("micro_batch_size", "gradient_accumulation_steps", "eval_batch_size", "num_epochs",
                 "sequence_len", "max_steps", "batch_size")


def preflight(loaded: "LoadedSpec") -> list[Diagnostic]:
    return _escape_hatch_counts(loaded) + _hub_model_cached(loaded)


def _escape_hatch_counts(loaded: "LoadedSpec") -> list[Diagnostic]:
    out = []
    for key, value in loaded.spec.training.axolotl.items():
        if key in POSITIVE_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool) and value < 1:
            out.append(Diagnostic(
                "cannot-train", f"training.axolotl.{key} is {value}: Axolotl's schema accepts it, but no training "
                "step can run with it", loaded.locate(("training", "axolotl", key)),
                hint="use 1 or more" + (" (or leave it out: training.batch.micro and training.batch.accumulate "
                                        "set the batch)" if "batch" in key or "accumulation" in key else "")))
    return out


def looks_like_hub_id(model_id: str, base_dir) -> bool:
    from pathlib import Path

    if model_id.startswith(("builtin:", ".", "/", "~")) or (Path(base_dir) / model_id).exists():
        return False
    return model_id.count("/") == 1


def _hub_model_cached(loaded: "LoadedSpec") -> list[Diagnostic]:
    base = loaded.spec.base_model
    out = []
    for key, repo in (("id", base.id), ("tokenizer", base.tokenizer)):
        if not repo or not looks_like_hub_id(repo, loaded.base_dir):
            continue
        revision = base.revision if key == "id" else None
        if not in_hub_cache(repo, revision):
            at = f" at revision {revision}" if revision else ""
            out.append(Diagnostic(
                "model-not-cached", f"base model '{repo}'{at} is not in the local Hugging Face cache, and llmspec "
                "never downloads while it runs (training is offline)", loaded.locate(("base_model", key)),
                hint=f"fetch it once beforehand (`huggingface-cli download {repo}"
                f"{' --revision ' + revision if revision else ''}`), or point base_model.id at a local folder"))
    return out


def in_hub_cache(repo: str, revision: str | None) -> bool:
    """Whether the repo's config.json (any model has one) is in the local cache at that revision."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # without the hub client nothing could load it either
        return False
    for filename in ("config.json", "tokenizer_config.json"):
        found = try_to_load_from_cache(repo, filename, revision=revision)
        if isinstance(found, str):
            return True
    return False


__all__ = ["POSITIVE_KEYS", "in_hub_cache", "looks_like_hub_id", "preflight"]

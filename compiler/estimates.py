"""Plan-time estimates: examples, tokens, optimizer steps, and rough training time.

Token counts come from the real tokenizer when the caller passes ``count_tokens`` (the
compile command counts with Axolotl's own tokenization of each record), otherwise from
characters / 4, and the result says which. Times come from the throughput table in
``docs/hardware-estimates.md`` (THROUGHPUT below): planning figures, not promises.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

if TYPE_CHECKING:
    from llmspec.spec.models import TrainingSpec

CHARS_PER_TOKEN = 4

# tokens/s per device; see docs/hardware-estimates.md for where each number comes from.
# GPU rows: Qwen's published single-A100-80GB fine-tuning profile at sequence length 2048
# (batch 1 x accumulation 8, flash-attention 2); full 7B ran on 2 GPUs, per-GPU figure here.
GPU_REFERENCE_PARAMS = {"1.8B": 1.8e9, "7B": 7.7e9}
THROUGHPUT: dict[str, dict[str, dict[str, float]]] = {
    "a100-80gb": {
        "1.8B": {"lora": 9640.0, "qlora": 8190.0, "full": 7120.0},
        "7B": {"lora": 3150.0, "qlora": 2340.0, "full": 1820.0},
    },
}
H100_OVER_A100 = 2.0          # conservative; NVIDIA quotes more for bf16 training
THROUGHPUT["h100-80gb"] = {size: {m: v * H100_OVER_A100 for m, v in row.items()}
                           for size, row in THROUGHPUT["a100-80gb"].items()}
MAX_SMALL_MODEL_SPEEDUP = 4.0  # small models are launch/IO bound: don't extrapolate 1/N forever
MULTI_GPU_EFFICIENCY = 0.9     # data-parallel scaling per added GPU, an assumption

# Measured here (llmspec's builtin:tiny, 205k parameters) on a shared 2-vCPU machine with
# torch 2.13 CPU, through `axolotl train`: median of Axolotl's tokens/train_per_sec_per_gpu.
CPU_TINY_MEASURED = {"lora": 6700.0, "qlora": 6700.0, "full": 8700.0}
CPU_TINY_PARAMS = 205_120
CPU_GFLOPS = 70.0              # measured fp32 matmul on the same 2 vCPUs
CPU_EFFICIENCY = 0.5           # share of matmul peak a training step reaches (assumption)
TINY_PARAMS = 10_000_000
# Seconds an `axolotl train` process spends before its first step on that machine (imports,
# accelerate launch, dataset preparation): 25 s in all for 30 steps of which under 3 s trained.
# Added to CPU estimates, where it dominates short runs; GPU rows have no measured figure.
CPU_STARTUP_SECONDS = 22.0

# Bytes per parameter of training state (weights, grads, AdamW moments) for the memory hint.
BYTES_PER_PARAM = {"full": 16.0, "lora": 2.2, "qlora": 0.7}
GPU_MEMORY_GB = 80.0


@dataclass
class TokenStats:
    train: list[int] = field(default_factory=list)
    eval: list[int] = field(default_factory=list)
    method: Literal["tokenizer", "chars/4"] = "chars/4"

    def summary(self, sequence_len: int) -> dict[str, Any]:
        every = self.train + self.eval
        return {
            "train": sum(self.train),
            "eval": sum(self.eval),
            "mean_per_example": round(sum(every) / len(every), 1) if every else 0.0,
            "max_per_example": max(every) if every else 0,
            "over_sequence_len": sum(1 for n in every if n > sequence_len),
            "method": self.method,
            "note": None if self.method == "tokenizer" else
            "approximation: characters / 4 (no tokenizer available); real counts vary by model and language",
        }


def _records(path: str | Path | None) -> list[dict[str, Any]]:
    if not path:
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def count_tokens(train_path: str | Path, eval_path: str | Path | None = None,
                 counter: Callable[[dict[str, Any]], int] | None = None) -> TokenStats:
    """Tokens per example of the written dataset files: ``counter(record)`` or chars/4."""
    from llmspec.compiler.formatting import example_text

    def approx(record: dict[str, Any]) -> int:
        return max(1, math.ceil(len(example_text(record)) / CHARS_PER_TOKEN))

    fn = counter or approx
    return TokenStats(train=[fn(r) for r in _records(train_path)], eval=[fn(r) for r in _records(eval_path)],
                      method="tokenizer" if counter else "chars/4")


# ----------------------------------------------------------------------------- model size


def model_parameters(model: str | Path | None) -> int | None:
    """Parameter count from a local config.json (decoder-only shapes), else from a `7B`-style name."""
    if model is None:
        return None
    cfg_path = Path(str(model)) / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cfg = None
    if cfg:
        cfg = cfg.get("text_config", cfg)
        try:
            h, layers = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"])
            vocab, inter = int(cfg["vocab_size"]), int(cfg.get("intermediate_size", 4 * h))
            heads = int(cfg.get("num_attention_heads", 1))
            kv = int(cfg.get("num_key_value_heads", heads))
            head_dim = int(cfg.get("head_dim") or h // heads)
            attn = 2 * h * heads * head_dim + 2 * h * kv * head_dim
            per_layer = attn + 3 * h * inter + 2 * h
            emb = vocab * h * (1 if cfg.get("tie_word_embeddings") else 2)
            return emb + layers * per_layer + h
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            pass
    m = re.search(r"(\d+(?:\.\d+)?)\s*([bBmM])(?![a-zA-Z])", str(model))
    if m:
        return int(float(m.group(1)) * (1e9 if m.group(2) in "bB" else 1e6))
    return None


# ----------------------------------------------------------------------------- throughput


def tokens_per_second(hardware_class: str, method: str, params: int) -> float | None:
    if hardware_class == "cpu-2-cores":
        if params <= TINY_PARAMS:
            return CPU_TINY_MEASURED[method] * min(1.0, CPU_TINY_PARAMS / params)
        flops_per_token = (6 if method == "full" else 4) * params
        return CPU_GFLOPS * 1e9 * CPU_EFFICIENCY / flops_per_token
    table = THROUGHPUT.get(hardware_class)
    if table is None:
        return None
    ref = "1.8B" if params <= 4e9 else "7B"
    scale = min(GPU_REFERENCE_PARAMS[ref] / params, MAX_SMALL_MODEL_SPEEDUP)
    return table[ref][method] * scale


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


# ----------------------------------------------------------------------------- estimate


def estimate(
    counts: Any,
    training: "TrainingSpec",
    hardware: str,
    tokens: TokenStats,
    *,
    model_params: int | None = None,
) -> dict[str, Any]:
    """The plan's numbers. ``counts``: a DatasetResult or a mapping with train_size/eval_size."""
    get = (lambda k: counts[k]) if isinstance(counts, dict) else (lambda k: getattr(counts, k))
    train_n, eval_n = int(get("train_size")), int(get("eval_size"))
    hw = training.hw
    gpus = hw.gpus if hardware == "cuda" else 1
    micro, accum = training.batch.micro, training.batch.accumulate
    # HF Trainer: batches per device per epoch, then optimizer steps (ceil at both levels).
    batches = math.ceil(train_n / (micro * gpus)) if train_n else 0
    steps_per_epoch = math.ceil(batches / accum) if batches else 0
    total_steps = training.max_steps if training.max_steps is not None else steps_per_epoch * training.epochs
    epochs_run = (total_steps / steps_per_epoch) if steps_per_epoch else 0.0

    tok = tokens.summary(training.sequence_len)
    tokens_to_train = tok["train"] * epochs_run
    out: dict[str, Any] = {
        "examples": {"train": train_n, "eval": eval_n},
        "tokens": tok,
        "steps": {
            "per_epoch": steps_per_epoch,
            "total": total_steps,
            "epochs": round(epochs_run, 3),
            "effective_batch": micro * accum * gpus,
            "micro_batch": micro, "accumulate": accum, "gpus": gpus,
            "note": ("sample packing (cuda) joins short examples into sequence_len-long rows, so the real "
                     "step count is lower" if hardware == "cuda" else None),
        },
        "model_parameters": model_params,
        "time": {},
    }
    if model_params:
        out["time"] = _time_by_class(tokens_to_train, hardware, training.adapter, model_params, gpus)
        need_gb = model_params * BYTES_PER_PARAM[training.adapter] / 1e9
        sharded = hardware == "cuda" and gpus > 1 and hw.strategy in ("fsdp", "deepspeed-zero3")
        per_gpu = need_gb / gpus if sharded else need_gb
        too_big = hardware == "cuda" and per_gpu > GPU_MEMORY_GB * 0.8
        out["memory"] = {
            "training_state_gb": round(need_gb, 1),
            "per_gpu_gb": round(per_gpu, 1),
            "note": (f"about {per_gpu:.0f} GB per GPU for weights, gradients and optimizer state before "
                     f"activations: more than an {GPU_MEMORY_GB:.0f} GB GPU holds; use lora/qlora, or several "
                     "GPUs with strategy fsdp or deepspeed-zero3" if too_big else None),
        }
    out["time_note"] = ("rough planning figures from docs/hardware-estimates.md (throughput per hardware "
                        "class, scaled by model size); real runs vary with sequence length, packing and GPU model")
    if training.preference_method:
        out["time_note"] += "; " + PREFERENCE_TIME_NOTE
    return out


# The throughput table is for supervised training; nobody measured it for the preference trainers
# on real models. What was measured (builtin:tiny, CPU) is said as such.
PREFERENCE_TIME_NOTE = (
    "the throughput is for supervised training and undercounts dpo, orpo and kto: they run both answers of a "
    "pair (dpo, orpo) or a reference model pass (dpo, kto); on builtin:tiny on the CPU a step took 3-4x (kto), "
    "3-8x (orpo) and 9-24x (dpo) a supervised one")


def parameters_for(model_id: str, model_path: str | Path | None = None) -> int | None:
    """Parameters of the spec's base model, without building or downloading anything."""
    if model_id.startswith("builtin:"):
        from llmspec.spec.builtin_models import BUILTIN_MODELS

        known = BUILTIN_MODELS.get(model_id)
        return known.parameters if known else None
    return model_parameters(model_path) if model_path else model_parameters(model_id)


def time_estimate(steps: int, *, examples: int, tokens: int | None, training: "TrainingSpec", hardware: str,
                  base_model: str, model_path: str | Path | None = None) -> dict[str, Any]:
    """Time per hardware class for ``steps`` optimizer steps, from summary figures only.

    For callers that know counts but not per-example tokens (the plan before a dataset is
    rebuilt). ``tokens`` is the train split's token total; None falls back to 256 per example.
    """
    if hardware in ("cpu", "cuda"):
        hw_kind = hardware
    else:
        from llmspec.compiler.axolotl_config import resolve_hardware

        hw_kind = resolve_hardware(training.hw)
    params = parameters_for(base_model, model_path)
    per_example = (tokens / examples) if tokens and examples else 256.0
    gpus = training.hw.gpus if hw_kind == "cuda" else 1
    tokens_to_train = steps * training.batch.micro * training.batch.accumulate * gpus * per_example
    if not params:
        return {}
    return _time_by_class(tokens_to_train, hw_kind, training.adapter, params, gpus)


def _time_by_class(tokens_to_train: float, hardware: str, method: str, params: int,
                   gpus: int) -> dict[str, Any]:
    """Seconds to train `tokens_to_train` tokens on each hardware class of the table."""
    out: dict[str, Any] = {}
    for cls in (["cpu-2-cores"] if hardware == "cpu" else ["a100-80gb", "h100-80gb"]):
        tps = tokens_per_second(cls, method, params)
        if not tps:
            continue
        if cls != "cpu-2-cores":
            tps *= gpus * (MULTI_GPU_EFFICIENCY if gpus > 1 else 1.0)
        seconds = tokens_to_train / tps
        row = {"tokens_per_second": round(tps), "train_seconds": round(seconds, 1)}
        if cls == "cpu-2-cores":
            row["startup_seconds"] = CPU_STARTUP_SECONDS
            seconds += CPU_STARTUP_SECONDS
        out[cls] = row | {"seconds": round(seconds, 1), "human": _hms(seconds)}
    return out


__all__ = ["THROUGHPUT", "TokenStats", "count_tokens", "estimate", "model_parameters", "parameters_for",
           "time_estimate", "tokens_per_second"]

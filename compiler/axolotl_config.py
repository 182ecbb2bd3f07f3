"""Step 4: the spec's ``training:`` (plus the formatted dataset) as a complete Axolotl config.

Targets axolotl 0.19.0. Every key we emit is recorded in ``origins`` with the spec path
that decided it, so Axolotl's own validation errors can point at a spec line
(``runtime/axolotl_check.py``). ``training.axolotl`` is merged last and wins.

Hardware settings follow Axolotl's docs for 0.19:
- cpu: no mixed precision, sdpa attention, fused LoRA kernels off (they are Triton, GPU
  only, and 0.19 turns them on by default for LoRA), no sample packing, no pinned memory.
- cuda: ``bf16: auto`` (bf16 where the GPU supports it, else fp16), flash attention 2,
  sample packing, gradient checkpointing.
- several GPUs: DDP by default; FSDP2 (``fsdp_version: 2`` + ``fsdp_config``, Axolotl's
  recommended path, FSDP1 is deprecated) or DeepSpeed ZeRO-2/3 with a JSON written into
  the run directory (contents as Axolotl's own ``deepspeed_configs/``). Launch is
  Axolotl's: ``axolotl train CFG --launcher accelerate -- --num_processes N``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from llmspec.compiler.formatting import FormatPlan
    from llmspec.spec.models import HardwareSpec, ProjectSpec

Hardware = Literal["cpu", "cuda"]
from .environment import OFFLINE_ENV

SpecPath = tuple

AXOLOTL_VERSION = "0.19.0"
# Imported by Axolotl inside the training process, by name: the compiler never imports it.
PLUGIN = "llmspec.runtime.train.axolotl_plugin.LlmspecPlugin"
CONFIG_FILE = "axolotl.yaml"

LORA_KERNEL_KEYS = ("lora_mlp_kernel", "lora_qkv_kernel", "lora_o_kernel", "lora_embedding_kernel")

# Axolotl's deepspeed_configs/zero2.json and zero3.json (v0.19 tree). The stage3_* spellings
# are kept because transformers fills the "auto" values under exactly those names.
_DS_FP16 = {"enabled": "auto", "auto_cast": False, "loss_scale": 0, "initial_scale_power": 32,
            "loss_scale_window": 1000, "hysteresis": 2, "min_loss_scale": 1}
_DS_COMMON = {"gradient_accumulation_steps": "auto", "gradient_clipping": "auto", "train_batch_size": "auto",
              "train_micro_batch_size_per_gpu": "auto", "wall_clock_breakdown": False}
DEEPSPEED_CONFIGS: dict[str, dict[str, Any]] = {
    "deepspeed-zero2": {
        "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}, "contiguous_gradients": True,
                              "overlap_comm": True},
        "bf16": {"enabled": "auto"},
        "fp16": _DS_FP16,
        **_DS_COMMON,
    },
    "deepspeed-zero3": {
        "zero_optimization": {
            "stage": 3, "overlap_comm": True, "contiguous_gradients": True, "sub_group_size": 0,
            "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto", "stage3_max_live_parameters": 0,
            "stage3_max_reuse_distance": 0, "stage3_gather_16bit_weights_on_model_save": True,
        },
        "bf16": {"enabled": "auto"},
        "fp16": _DS_FP16,
        **_DS_COMMON,
    },
}

# The order keys appear in the YAML: grouped as a person reads a config, then anything else sorted.
KEY_ORDER = (
    "base_model", "revision_of_model", "tokenizer_config", "trust_remote_code", "chat_template",
    "datasets", "test_datasets", "val_set_size", "dataset_prepared_path", "output_dir", "train_on_inputs",
    "sequence_len", "micro_batch_size", "gradient_accumulation_steps", "num_epochs", "max_steps",
    "learning_rate", "lr_scheduler", "warmup_ratio", "warmup_steps", "weight_decay", "optimizer", "seed",
    "eval_steps", "evals_per_epoch", "save_steps", "saves_per_epoch", "save_total_limit", "logging_steps",
    "adapter", "load_in_4bit", "lora_r", "lora_alpha", "lora_dropout", "lora_target_linear",
    "lora_target_modules",
)


@dataclass
class CompiledTraining:
    config: dict[str, Any]                     # the complete Axolotl YAML content
    launcher: list[str]                        # the command that trains (argv)
    env: dict[str, str]                        # environment for that command
    origins: dict[str, SpecPath]               # axolotl key -> spec path that set it
    config_path: Path                          # where the YAML belongs (inside run_dir)
    files: dict[str, str] = field(default_factory=dict)  # other files the config names: path -> content
    hardware: Hardware = "cpu"
    gpus: int = 1
    strategy: str = "ddp"

    def to_yaml(self) -> str:
        return dump_yaml(self.config)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config, "launcher": list(self.launcher), "env": dict(self.env),
            "origins": {k: list(v) for k, v in sorted(self.origins.items())},
            "config_path": str(self.config_path), "files": sorted(self.files),
            "hardware": self.hardware, "gpus": self.gpus, "strategy": self.strategy,
        }


    def to_json(self) -> dict[str, Any]:
        """Everything, file contents included: what the Plan's train stage carries."""
        return {**self.to_dict(), "files": dict(sorted(self.files.items()))}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "CompiledTraining":
        return cls(config=d["config"], launcher=list(d["launcher"]), env=dict(d["env"]),
                   origins={k: tuple(v) for k, v in d["origins"].items()}, config_path=Path(d["config_path"]),
                   files=dict(d.get("files", {})), hardware=d.get("hardware", "cpu"), gpus=d.get("gpus", 1),
                   strategy=d.get("strategy", "ddp"))

    def materialize(self, folders: dict[str, str]) -> "CompiledTraining":
        """A copy with the ``${name}`` placeholders replaced by real folders (absolute paths)."""
        def sub(value: Any) -> Any:
            if isinstance(value, str):
                for name, folder in folders.items():
                    value = value.replace("${" + name + "}", folder)
                return value
            if isinstance(value, list):
                return [sub(v) for v in value]
            if isinstance(value, dict):
                return {k: sub(v) for k, v in value.items()}
            return value
        return CompiledTraining(config=sub(self.config), launcher=sub(self.launcher), env=dict(self.env),
                                origins=dict(self.origins), config_path=Path(sub(str(self.config_path))),
                                files={sub(k): v for k, v in self.files.items()}, hardware=self.hardware,
                                gpus=self.gpus, strategy=self.strategy)


def ordered(config: dict[str, Any]) -> dict[str, Any]:
    """The config with keys in KEY_ORDER, the rest sorted; nested mappings sorted."""
    def deep(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: deep(v[k]) for k in sorted(v)}
        if isinstance(v, list):
            return [deep(x) for x in v]
        return v

    head = [k for k in KEY_ORDER if k in config]
    tail = sorted(k for k in config if k not in KEY_ORDER)
    return {k: deep(config[k]) for k in head + tail}


def dump_yaml(config: dict[str, Any]) -> str:
    """Stable YAML: fixed key order, block style, so two compiles diff line by line."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # keep our order
    yaml.width = 4096
    buf = io.StringIO()
    yaml.dump(ordered(config), buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------- hardware


def resolve_hardware(hardware: "HardwareSpec | str") -> Hardware:
    """cpu or cuda. Only ``auto`` asks torch (and only then is torch imported), and only where
    an NVIDIA driver is installed: without one torch would say cpu, and importing it costs
    seconds and ~600 MiB of memory, most of ``llmspec clean``'s peak on a small source."""
    kind = hardware if isinstance(hardware, str) else hardware.type
    if kind in ("cpu", "cuda"):
        return kind  # type: ignore[return-value]
    if "torch" not in sys.modules and not cuda_driver_present():
        return "cpu"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def cuda_driver_present() -> bool:
    """Whether the CUDA driver library loads (loading it initialises nothing). Only Linux says
    no for sure; elsewhere (a ROCm or Windows build) torch is asked."""
    if not sys.platform.startswith("linux"):
        return True
    import ctypes

    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return os.path.exists("/dev/kfd")  # ROCm's device: torch.cuda also covers AMD GPUs


def decoder_layer_class(model_path: str) -> str | None:
    """The transformer block class FSDP wraps, from a local model's config.json, when we can tell."""
    cfg = Path(model_path) / "config.json"
    try:
        archs = json.loads(cfg.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError):
        return None
    for arch in archs:
        if isinstance(arch, str) and arch.endswith("ForCausalLM"):
            return arch[: -len("ForCausalLM")] + "DecoderLayer"
    return None


# ----------------------------------------------------------------------------- compile


def compile_axolotl_config(
    spec: "ProjectSpec",
    *,
    model_path: str,
    dataset: dict[str, str],
    run_dir: Path,
    format_plan: "FormatPlan",
    hardware: Hardware,
    tokenizer_path: str | None = None,
) -> CompiledTraining:
    """The Axolotl config for this spec.

    ``model_path``: a local folder (builtin:tiny resolved, or a path) or a hub id.
    ``dataset``: {"train": path, "eval": path (optional)} as written by ``build_dataset``.
    ``hardware``: already resolved (``resolve_hardware``).
    """
    t = spec.training
    hw = t.hw
    run_dir = Path(run_dir) if str(run_dir).startswith("${") else Path(run_dir).absolute()
    gpus = hw.gpus if hardware == "cuda" else 1
    strategy = hw.strategy if hardware == "cuda" and gpus > 1 else "ddp"
    cfg: dict[str, Any] = {}
    origins: dict[str, SpecPath] = {}
    files: dict[str, str] = {}

    def put(key: str, value: Any, origin: SpecPath) -> None:
        cfg[key] = value
        origins[key] = origin

    # model
    put("base_model", model_path, ("base_model", "id"))
    if spec.base_model.revision and not model_path.startswith("${") and not Path(model_path).exists():
        put("revision_of_model", spec.base_model.revision, ("base_model", "revision"))
    if tokenizer_path or spec.base_model.tokenizer:
        put("tokenizer_config", tokenizer_path or spec.base_model.tokenizer, ("base_model", "tokenizer"))
    put("trust_remote_code", False, ("base_model", "id"))
    if format_plan.style == "chat":
        put("chat_template", spec.base_model.chat_template, ("base_model", "chat_template"))

    # data
    entry = {**format_plan.axolotl_dataset, "ds_type": "json", "split": "train"}
    put("datasets", [{"path": _abs(dataset["train"]), **entry}], ("format", "style"))
    has_eval = bool(dataset.get("eval"))
    if has_eval:
        put("test_datasets", [{"path": _abs(dataset["eval"]), **entry}], ("split", "eval_fraction"))
    # We split ourselves (deterministic, leakage-checked); Axolotl must not split again.
    put("val_set_size", 0.0, ("split", "eval_fraction"))
    put("dataset_prepared_path", str(run_dir / "prepared"), ("training",))
    put("output_dir", str(run_dir / "output"), ("training",))
    put("train_on_inputs", False, ("format", "style"))

    # schedule
    put("sequence_len", t.sequence_len, ("training", "sequence_len"))
    put("micro_batch_size", t.batch.micro, ("training", "batch", "micro"))
    put("gradient_accumulation_steps", t.batch.accumulate, ("training", "batch", "accumulate"))
    put("num_epochs", t.epochs, ("training", "epochs"))
    if t.max_steps is not None:
        put("max_steps", t.max_steps, ("training", "max_steps"))
    put("learning_rate", t.learning_rate, ("training", "learning_rate"))
    put("lr_scheduler", t.scheduler, ("training", "scheduler"))
    if t.warmup.steps is not None:
        put("warmup_steps", t.warmup.steps, ("training", "warmup", "steps"))
    else:
        put("warmup_ratio", t.warmup.ratio, ("training", "warmup", "ratio"))
    put("weight_decay", t.weight_decay, ("training", "weight_decay"))
    put("optimizer", t.optimizer, ("training", "optimizer"))
    put("seed", t.seed, ("training", "seed"))
    if has_eval:
        if t.eval_every is not None:
            put("eval_steps", t.eval_every, ("training", "eval_every"))
        else:
            put("evals_per_epoch", 1, ("training", "eval_every"))
    if t.save_every is not None:
        put("save_steps", t.save_every, ("training", "save_every"))
    else:
        put("saves_per_epoch", 1, ("training", "save_every"))
    put("save_total_limit", 2, ("training", "save_every"))
    put("logging_steps", 1, ("training",))

    # method
    adapter_origin: SpecPath = ("training", "preference", "adapter") if t.preference_method else ("training", "method")
    if t.adapter in ("lora", "qlora"):
        put("adapter", t.adapter, adapter_origin)
        if t.adapter == "qlora":
            put("load_in_4bit", True, adapter_origin)
        put("lora_r", t.lora.r, ("training", "lora", "r"))
        put("lora_alpha", t.lora.alpha, ("training", "lora", "alpha"))
        put("lora_dropout", t.lora.dropout, ("training", "lora", "dropout"))
        if t.lora.target == "all-linear":
            put("lora_target_linear", True, ("training", "lora", "target"))
        else:
            put("lora_target_modules", list(t.lora.target), ("training", "lora", "target"))
    if t.preference_method:
        # Axolotl's RL trainers (TRL's DPO, ORPO and KTO); with a LoRA adapter the reference model
        # is the base with the adapter switched off, so no second copy of the model is loaded.
        put("rl", t.preference_method, ("training", "method"))
        if t.preference.beta is not None:
            put("orpo_alpha" if t.preference_method == "orpo" else "rl_beta", t.preference.beta,
                ("training", "preference", "beta"))
        if t.preference.sft_weight is not None:
            # TRL sums the listed losses with these weights: DPO's ranking plus NLL on the chosen answer.
            put("dpo_loss_type", ["sigmoid", "sft"], ("training", "preference", "sft_weight"))
            put("dpo_loss_weights", [1.0, t.preference.sft_weight], ("training", "preference", "sft_weight"))
        if t.preference_method == "kto":
            # TRL's KTO trainer reads the label column itself; Axolotl refuses kto without this.
            put("remove_unused_columns", False, ("training", "method"))

    # hardware
    hw_origin: SpecPath = ("training", "hardware")
    if hardware == "cpu":
        for key in ("bf16", "fp16", "tf32"):
            put(key, False, hw_origin)
        put("attn_implementation", "sdpa", hw_origin)
        put("sample_packing", False, hw_origin)
        if t.adapter in ("lora", "qlora"):
            for key in LORA_KERNEL_KEYS:
                put(key, False, hw_origin)
        # pinned memory and prefetching are for feeding a GPU; on CPU they only cost.
        put("dataloader_num_workers", 0, hw_origin)
        put("dataloader_pin_memory", False, hw_origin)
        # CPU runs are small; a process pool costs more than it saves (measured: 40s -> 25s preprocess).
        put("dataset_num_proc", 1, hw_origin)
    else:
        put("bf16", "auto", hw_origin)
        put("tf32", True, hw_origin)
        put("attn_implementation", "flash_attention_2", hw_origin)
        # Axolotl packs supervised examples only; its RL trainers refuse sample_packing.
        packing = not t.preference_method
        put("sample_packing", packing, hw_origin)
        put("pad_to_sequence_len", True, hw_origin)
        # Small eval sets cannot fill a packed batch; Axolotl then refuses to start.
        if has_eval and packing:
            put("eval_sample_packing", False, hw_origin)
        put("gradient_checkpointing", True, hw_origin)
        if gpus > 1 and strategy == "fsdp":
            put("fsdp_version", 2, hw_origin)
            fsdp: dict[str, Any] = {
                "offload_params": False,
                # Rank-0 loading deadlocks with bitsandbytes 4-bit (0.19 rejects the pair).
                "cpu_ram_efficient_loading": t.adapter != "qlora",
                "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                "state_dict_type": "FULL_STATE_DICT",
                "reshard_after_forward": True,
            }
            layer = decoder_layer_class(model_path)
            if layer:
                fsdp["transformer_layer_cls_to_wrap"] = layer
            put("fsdp_config", fsdp, hw_origin)
            # FSDP2 wants activation checkpointing inside fsdp_config, not the trainer's.
            cfg.pop("gradient_checkpointing")
            origins.pop("gradient_checkpointing")
            fsdp["activation_checkpointing"] = True
        elif gpus > 1 and strategy.startswith("deepspeed"):
            ds_path = run_dir / f"{strategy.replace('-', '_')}.json"
            files[str(ds_path)] = json.dumps(DEEPSPEED_CONFIGS[strategy], indent=2, sort_keys=True) + "\n"
            put("deepspeed", str(ds_path), hw_origin)

    # The escape hatch, merged last: the user's word is final, and Axolotl validates it.
    for key, value in t.axolotl.items():
        put(key, value, ("training", "axolotl", key))
    # Seeded adapter init and per-step metrics (runtime/train/axolotl_plugin.py), beside the user's plugins.
    put("plugins", list(cfg.get("plugins") or []) + [PLUGIN], origins.get("plugins", ("training",)))
    # Resume is what makes a killed apply cheap: Axolotl picks up the newest checkpoint itself.
    if "auto_resume_from_checkpoints" not in cfg:
        put("auto_resume_from_checkpoints", True, ("training",))

    config_path = run_dir / CONFIG_FILE
    return CompiledTraining(
        config=ordered(cfg),
        launcher=launch_command(config_path, hardware, gpus),
        env=dict(OFFLINE_ENV),
        origins=origins,
        config_path=config_path,
        files=files,
        hardware=hardware,
        gpus=gpus,
        strategy=strategy,
    )


def _abs(path: str) -> str:
    # A ${...} placeholder stays as it is: the runtime substitutes an absolute folder.
    return path if path.startswith("${") else str(Path(path).absolute())


def launch_command(config_path: Path, hardware: Hardware, gpus: int) -> list[str]:
    """Axolotl's own CLI; for several GPUs its accelerate launcher with the process count.

    Multi-node runs add accelerate's ``--num_machines/--machine_rank/--main_process_ip``
    after the ``--`` (Axolotl passes everything after it to ``accelerate launch``).
    """
    cmd = ["axolotl", "train", str(config_path)]
    if hardware == "cuda" and gpus > 1:
        cmd += ["--launcher", "accelerate", "--", "--num_processes", str(gpus)]
    return cmd


__all__ = [
    "AXOLOTL_VERSION", "CONFIG_FILE", "PLUGIN", "CompiledTraining", "DEEPSPEED_CONFIGS", "OFFLINE_ENV",
    "compile_axolotl_config", "decoder_layer_class", "dump_yaml", "launch_command", "resolve_hardware",
]

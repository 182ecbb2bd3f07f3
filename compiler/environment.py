"""The environment every process that loads models runs under: offline, no telemetry.

One list for Axolotl's subprocess (the compiled training carries it), the in-process
transformers loads of acceptance, preview and serving (runtime/engine/offline.py), and the docs.
"""

from __future__ import annotations

# Axolotl and transformers must never reach the network or phone home from a run.
OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "DO_NOT_TRACK": "1",
    "AXOLOTL_DO_NOT_TRACK": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

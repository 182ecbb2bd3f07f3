"""Put this process in offline mode before it loads a model or imports Axolotl."""

from __future__ import annotations

import os

from llmspec.compiler.environment import OFFLINE_ENV


def go_offline(*, override: bool = False) -> None:
    """Set the offline, no-telemetry variables (keeping the user's own unless ``override``)."""
    for key, value in OFFLINE_ENV.items():
        if override:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    try:  # already imported: its constants were read at import time
        import huggingface_hub.constants as hub

        hub.HF_HUB_OFFLINE = True
    except ImportError:
        pass

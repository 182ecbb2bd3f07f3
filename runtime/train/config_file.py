"""Writing a compiled training config: the YAML Axolotl reads and the files it names."""

from __future__ import annotations

from pathlib import Path

from llmspec.compiler.axolotl_config import CompiledTraining
from llmspec.runtime.engine.atomic import write_text_atomic


def write_training_config(compiled: CompiledTraining) -> Path:
    """Write the YAML and the files it refers to (DeepSpeed JSON); return the YAML's path."""
    for path, content in sorted(compiled.files.items()):
        write_text_atomic(Path(path), content)
    write_text_atomic(compiled.config_path, compiled.to_yaml())
    return compiled.config_path

"""The kinds of stage a Plan has. A str enum: JSON and state files keep the plain strings."""

from __future__ import annotations

from enum import StrEnum


class StageKind(StrEnum):
    SOURCES = "sources"
    MODEL = "model"          # a GGUF base model converted into a cached model folder
    CLEAN = "clean"
    REPLAY = "replay"        # the base model's answers to general prompts (training.replay)
    DATASET = "dataset"
    TRAIN = "train"
    ACCEPTANCE = "acceptance"
    PROMOTE = "promote"

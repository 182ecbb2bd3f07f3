"""The kinds of stage a Plan has. A str enum: JSON and state files keep the plain strings."""

from __future__ import annotations

from enum import StrEnum


class StageKind(StrEnum):
    SOURCES = "sources"
    CLEAN = "clean"
    DATASET = "dataset"
    TRAIN = "train"
    ACCEPTANCE = "acceptance"
    PROMOTE = "promote"

"""The feedback store as a source (`format: feedback`): exchanges people rated or corrected.

Units: exchanges with feedback. A correction becomes an example (the user's last message -> the
correction; the model's original answer rides along as ``rejected`` for preference training);
a thumbs-up becomes one when ``include_up``; a thumbs-down without a correction is rejected with
its reason (rule ``feedback``), or kept labelled false with ``include_down`` (kto). Origins: ``NAME:exchange ID``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ._common import Part, concat_rejects, contract_rejects, rejects
from .tabular import frame_from_rows

COLUMNS = ("prompt", "answer", "rejected", "label", "system", "messages", "exchange_id", "run", "rating")


def read(name: str, spec, contract, base_dir: Path, env: Mapping[str, str] | None) -> Part:
    from llmspec.runtime.feedback.location import store_target
    from llmspec.runtime.feedback.store import FeedbackStore, iter_training_rows

    store = FeedbackStore.open(store_target(base_dir, spec.store, env))
    try:
        entries = store.entries()
    finally:
        store.close()
    rows, origins, bad_details, bad_origins = [], [], [], []
    for exchange_id, row, reason in iter_training_rows(entries, include_up=spec.include_up,
                                                            include_down=spec.include_down):
        if row is None:
            bad_details.append(reason)
            bad_origins.append(f"{name}:exchange {exchange_id}")
        else:
            rows.append(tuple(row[c] for c in COLUMNS))
            origins.append(f"{name}:exchange {exchange_id}")
    good, wrong = frame_from_rows(list(COLUMNS), rows, origins, contract, name)
    return Part(good, concat_rejects([contract_rejects(wrong), rejects("feedback", bad_details, bad_origins)]),
                len(entries))


def fingerprint(spec, base_dir: Path, env: Mapping[str, str] | None = None) -> str:
    """The hash of the feedback the source would read (changes only when feedback arrives)."""
    from llmspec.runtime.feedback.location import store_target
    from llmspec.runtime.feedback.store import FeedbackStore

    store = FeedbackStore.open(store_target(base_dir, spec.store, env))
    try:
        return store.fingerprint()
    finally:
        store.close()

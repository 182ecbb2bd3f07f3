"""The interaction log `llmspec serve` writes: exchanges (optionally with PII redacted by the
spec's own `redact_pii` rules) and the feedback posted for them."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .store import FeedbackStore


def redactor(quality) -> Callable[[str], str]:
    """The spec's `redact_pii` placeholders applied to one string (every PII kind with the
    default placeholder when the spec has no such rule)."""
    from llmspec.runtime.clean.pii import KINDS, redact_all

    placeholders: dict[str, str] = {}
    for rule in getattr(quality, "rules", []) or []:
        args = getattr(rule, "redact_pii", None)
        if args is not None:
            for kind in args.kinds:
                placeholders.setdefault(kind, args.placeholder.replace("{KIND}", kind.upper()))
    if not placeholders:
        placeholders = {kind: f"<{kind.upper()}>" for kind in KINDS}
    return lambda text: redact_all(text, placeholders)


class InteractionLog:
    def __init__(self, store: FeedbackStore, redact: Callable[[str], str] | None = None):
        self.store = store
        self.redact = redact

    def log_exchange(self, record: Mapping[str, Any]) -> None:
        record = dict(record)
        if self.redact is not None:
            record["messages"] = [{**m, "content": self.redact(m["content"])} for m in record["messages"]]
            record["answer"] = self.redact(record["answer"])
        self.store.log_exchange(record)

    def add_feedback(self, exchange_id: str, *, rating: str | None, correction: str | None, note: str | None) -> bool:
        """False when no exchange has this id."""
        if not self.store.exists(exchange_id):
            return False
        if self.redact is not None:
            correction = self.redact(correction) if correction else correction
            note = self.redact(note) if note else note
        self.store.add_feedback(exchange_id, rating=rating, correction=correction, note=note)
        return True

    def close(self) -> None:
        self.store.close()

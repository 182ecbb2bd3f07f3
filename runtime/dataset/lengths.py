"""Token-exact lengths: each example measured as Axolotl tokenizes it, and the over-length
ones handled by llmspec, so that what the plan and the report count is what Axolotl trains on.

Axolotl (0.19), after tokenizing with the dataset type's prompt strategy, silently drops a
sequence longer than ``sequence_len`` or shorter than 2 tokens
(``handle_long_seq_in_dataset``) and one with no trained token (``drop_no_trainable_tokens``);
only its log says so. Here every record goes through that same prompt strategy
(``preview.axolotl_strategy``, the code ``axolotl preprocess`` runs) first:

- longer than ``sequence_len`` with ``format.too_long: reject`` (the default): rejected with
  rule ``too_long`` and the token count;
- with ``too_long: truncate``: the end of the last trained text (the last assistant turn,
  the alpaca output, the completion text, the last trained segment) is cut, by binary search
  on its length, until the whole example fits; an example whose prompt alone leaves no room
  for one trained token is rejected as ``too_long``;
- no trained token, or under 2 tokens: rejected with rule ``no_trained_tokens``.

So Axolotl drops nothing, and the counts of examples, steps and tokens agree with it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .build import RenderError

if TYPE_CHECKING:
    from llmspec.compiler.formatting import FormatPlan

RULE_TOO_LONG = "too_long"
RULE_NOTHING_TRAINED = "no_trained_tokens"
IGNORE = -100
MIN_TOKENS = 2  # Axolotl's default min_sample_len
UNBOUNDED = 1 << 24


@dataclass
class Fitted:
    record: dict[str, Any]
    tokens: int
    trained: int
    truncated: bool = False


class LengthCheck:
    """``fit(record)``: the record as it will train (maybe truncated) and its token counts,
    or a ``RenderError`` with the reason it cannot train."""

    def __init__(self, strategy, plan: "FormatPlan", sequence_len: int, policy: str):
        # A preference record's answers are measured one by one, each as a chat example.
        self.preference = plan.preference
        plan = plan.sft_view() if plan.preference else plan
        self.strategy, self.plan, self.sequence_len, self.policy = strategy, plan, sequence_len, policy

    def measure(self, record: dict[str, Any]) -> tuple[int, int]:
        from .preview import tokenize_record

        ids, labels = tokenize_record(self.strategy, self.plan, record)
        return len(ids), sum(1 for x in labels if x != IGNORE)

    def fit(self, record: dict[str, Any]) -> Fitted:
        if self.preference:
            return self._fit_answers(record)
        return self._fit(record)

    def _fit_answers(self, record: dict[str, Any]) -> Fitted:
        """A preference record fits when the prompt with each of its answers fits (Axolotl drops
        the pair otherwise); ``truncate`` cuts each answer on its own. Its size is the longer."""
        out, size, trained, cut = dict(record), 0, 0, False
        for key in ("chosen", "rejected", "completion"):
            if key not in record:
                continue
            fitted = self._fit({"messages": record["messages"] + [{"role": "assistant", "content": record[key]}]})
            out[key] = fitted.record["messages"][-1]["content"]
            size, trained, cut = max(size, fitted.tokens), max(trained, fitted.trained), cut or fitted.truncated
        return Fitted(out, size, trained, cut)

    def _fit(self, record: dict[str, Any]) -> Fitted:
        n, trained = self.measure(record)
        if n > self.sequence_len:
            if self.policy != "truncate":
                raise RenderError(RULE_TOO_LONG, f"{n} tokens as Axolotl tokenizes it, over training.sequence_len "
                                                 f"{self.sequence_len} (format.too_long: reject)")
            return self._truncate(record, n)
        if n < MIN_TOKENS or not trained:
            raise RenderError(RULE_NOTHING_TRAINED, f"{n} tokens, {trained} of them trained: Axolotl would drop it")
        return Fitted(record, n, trained)

    def _truncate(self, record: dict[str, Any], n: int) -> Fitted:
        holder, key = _last_trained_text(record)
        text = holder[key]
        best: Fitted | None = None
        lo, hi = 0, len(text) - 1  # the longest prefix that fits, by binary search on characters
        while lo <= hi:
            mid = (lo + hi) // 2
            trial = _with_text(record, holder, key, text[:mid].rstrip())
            size, trained = self.measure(trial)
            if size <= self.sequence_len:
                if trained and size >= MIN_TOKENS:
                    best = Fitted(trial, size, trained, truncated=True)
                lo = mid + 1
            else:
                hi = mid - 1
        if best is None:
            raise RenderError(RULE_TOO_LONG, f"{n} tokens, over training.sequence_len {self.sequence_len}, and the "
                                             "prompt alone leaves no room for a trained token to truncate to")
        return best


def _last_trained_text(record: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The mapping and key of the text truncation shortens: the last trained text."""
    if "messages" in record:
        return next(m for m in reversed(record["messages"]) if m["role"] == "assistant"), "content"
    if "segments" in record:
        return next(s for s in reversed(record["segments"]) if s["label"]), "text"
    if "output" in record:
        return record, "output"
    return record, "text"


def _with_text(record: dict[str, Any], holder: dict[str, Any], key: str, text: str) -> dict[str, Any]:
    saved = holder[key]
    holder[key] = text
    try:
        return copy.deepcopy(record)
    finally:
        holder[key] = saved


def length_check(tokenizer, plan: "FormatPlan", *, sequence_len: int, chat_template: str,
                 policy: str) -> LengthCheck | None:
    """The check for ``plan``'s examples with Axolotl's prompt strategy; None without Axolotl
    (nothing can train then, and counts fall back to estimates that say so)."""
    from .preview import axolotl_strategy

    # Measured with no length limit: some strategies cut or chunk at sequence_len themselves
    # (completion splits long texts into several rows), which would hide the real length.
    strategy = axolotl_strategy(tokenizer, plan.sft_view() if plan.preference else plan, sequence_len=UNBOUNDED,
                                chat_template=chat_template)
    return LengthCheck(strategy, plan, sequence_len, policy) if strategy is not None else None


__all__ = ["Fitted", "LengthCheck", "RULE_NOTHING_TRAINED", "RULE_TOO_LONG", "length_check"]

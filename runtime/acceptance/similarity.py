"""Text similarity for the ``similar`` assertion: ROUGE-L and SQuAD token F1, pure Python.

Both return a float in ``[0, 1]`` and are symmetric in how they treat empty text: two texts
with no tokens are identical (1.0), one empty text against a non-empty one scores 0.0.
(The ``rouge-score`` package returns 0.0 for two empty texts; we don't, because a model that
was expected to say nothing and said nothing has matched its reference.)
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Callable, Sequence

_WORD = re.compile(r"\w+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def rouge_tokens(text: str) -> list[str]:
    """Lowercase word tokens (unicode letters, digits and underscore); punctuation drops out."""
    return _WORD.findall(text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, O(len(a)*len(b)) time, O(len(b)) memory."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def _f1(overlap: int, n_candidate: int, n_reference: int) -> float:
    if overlap == 0:
        return 0.0
    precision = overlap / n_candidate
    recall = overlap / n_reference
    return 2 * precision * recall / (precision + recall)


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F-measure (beta = 1, as in ``rouge-score``): LCS-based precision and recall
    over lowercase word tokens. No stemming and no stop-word removal."""
    c, r = rouge_tokens(candidate), rouge_tokens(reference)
    if not c or not r:
        return float(not c and not r)
    return _f1(lcs_length(c, r), len(c), len(r))


def squad_normalize(text: str) -> str:
    """The SQuAD v1.1 answer normalisation: lowercase, drop punctuation, drop the articles
    a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(candidate: str, reference: str) -> float:
    """SQuAD-style token F1: bag-of-words overlap of the normalised texts (order ignored,
    repeated tokens counted at most as often as they occur in both)."""
    c = squad_normalize(candidate).split()
    r = squad_normalize(reference).split()
    if not c or not r:
        return float(not c and not r)
    overlap = sum((Counter(c) & Counter(r)).values())
    return _f1(overlap, len(c), len(r))


METRICS: dict[str, Callable[[str, str], float]] = {"rouge_l": rouge_l, "token_f1": token_f1}


def similarity(metric: str, candidate: str, reference: str) -> float:
    """Score ``candidate`` against ``reference`` with a metric named in ``METRICS``."""
    try:
        fn = METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown similarity metric {metric!r}; use one of "
                         f"{', '.join(METRICS)}") from None
    return fn(candidate, reference)


__all__ = ["METRICS", "lcs_length", "rouge_l", "rouge_tokens", "similarity", "squad_normalize",
           "token_f1"]

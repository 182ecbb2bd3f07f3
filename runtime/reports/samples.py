"""Sample rejected rows for the report, each cut around the part that got it rejected.

A row rejected by a pattern is useless as a sample when the window shown ends before the match
(a long answer with a placeholder at the end); the window here is centred on the first match of
the rule's own patterns and the match's span is kept, so the page can highlight it.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

WIDTH = 300
BEFORE = 80  # characters of context kept before a match


def rule_patterns(steps: Iterable[Any]) -> dict[str, list[re.Pattern]]:
    """rule reason -> its compiled patterns, for the rules that reject by pattern. Patterns are
    in the spec's dialect (Rust regex without look-around), which Python's ``re`` reads alike;
    one it cannot read only loses its highlight."""
    out: dict[str, list[re.Pattern]] = {}
    for step in steps:
        if getattr(step, "kind", None) not in ("reject_matching", "replace_matching"):
            continue
        compiled = []
        for p in (step.args or {}).get("patterns") or []:
            try:
                compiled.append(re.compile(p))
            except (re.error, TypeError):
                continue
        if compiled:
            out[step.reason] = compiled
    return out


def window(text: str, patterns: list[re.Pattern] | None, width: int = WIDTH) -> dict[str, Any]:
    """``{"text": ..., "match": [start, end] or None}``: at most ``width`` characters (plus
    ellipses), showing the earliest match of ``patterns`` when there is one."""
    hit = None
    for p in patterns or []:
        m = p.search(text)
        if m and m.end() > m.start() and (hit is None or m.start() < hit[0]):
            hit = (m.start(), m.end())
    if hit is None:
        return {"text": text if len(text) <= width else text[:width] + "…", "match": None}
    start = max(0, min(hit[0] - BEFORE, len(text) - width))
    end = min(len(text), start + max(width, hit[1] - hit[0] + BEFORE))
    prefix = "…" if start else ""
    suffix = "…" if end < len(text) else ""
    shift = len(prefix) - start
    return {"text": prefix + text[start:end] + suffix,
            "match": [hit[0] + shift, min(hit[1], end) + shift]}


def reject_samples(rejects: Any, steps: Iterable[Any] = (), per_rule: int = 3) -> dict[str, list[dict]]:
    """Up to ``per_rule`` samples per rule from a rejects frame (data columns + _rule, _detail,
    _origin, _raw)."""
    if rejects is None or rejects.is_empty():
        return {}
    patterns = rule_patterns(steps)
    out: dict[str, list[dict]] = {}
    data_cols = [c for c in rejects.columns if not c.startswith("_")]
    for row in rejects.iter_rows(named=True):
        rule = row.get("_rule") or "?"
        bucket = out.setdefault(rule, [])
        if len(bucket) >= per_rule:
            continue
        text = " | ".join(str(row[c]) for c in data_cols if row.get(c) not in (None, ""))
        if not text and row.get("_raw") is not None:
            text = bytes(row["_raw"])[:200].decode("utf-8", "replace")
        bucket.append({"origin": row.get("_origin"), "detail": row.get("_detail"),
                       **window(text, patterns.get(rule))})
    return out

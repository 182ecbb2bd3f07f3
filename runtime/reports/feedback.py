"""The report's feedback section: what came in from `llmspec serve` for this run, and how the
cases people corrected fare on the new model.

Read from the run's own stage folders (the run folder links them): the kept rows of each
``format: feedback`` source (``clean.NAME/kept.parquet``, with their ``rating`` column), the rows
its reader set aside with their reasons (``sources.NAME/rejected.parquet``), and the acceptance
tests named ``feedback:<exchange id>`` (``tests_from: feedback``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

FEEDBACK_TEST_PREFIX = "feedback:"
SAMPLES = 3
TEXT_CHARS = 300


def feedback_report(report: Mapping[str, Any], run_dir: Path) -> dict[str, Any] | None:
    """The section as plain data, or None when the run read no feedback and ran no feedback test."""
    sources = {n: s for n, s in (report.get("sources") or {}).items() if (s or {}).get("format") == "feedback"}
    tests = [t for t in (report.get("acceptance") or {}).get("tests") or []
             if str(t.get("name", "")).startswith(FEEDBACK_TEST_PREFIX)]
    if not sources and not tests:
        return None
    out: dict[str, Any] = {"sources": {}, "tests": []}
    by_exchange: dict[str, dict[str, Any]] = {}
    for name, src in sources.items():
        kept = _read(Path(run_dir) / f"clean.{name}" / "kept.parquet")
        rows = kept.to_dicts() if kept is not None else []
        for row in rows:
            by_exchange.setdefault(str(row.get("exchange_id")), row)
        by_rating: dict[str, int] = {}
        for row in rows:
            rating = str(row.get("rating") or "corrected")
            by_rating[rating] = by_rating.get(rating, 0) + 1
        out["sources"][name] = {
            "read": int(src.get("rows_in") or 0), "kept": int(src.get("rows_kept") or 0),
            "by_rating": dict(sorted(by_rating.items())),
            "not_used": _reasons(Path(run_dir) / f"sources.{name}" / "rejected.parquet"),
            "rejected_by_rule": dict(src.get("rejected") or {}),
            "samples": [{"exchange": row.get("exchange_id"), "rating": row.get("rating"),
                         "prompt": _clip(row.get("prompt")), "answer_was": _clip(row.get("rejected")),
                         "learned": _clip(row.get("answer"))} for row in rows[:SAMPLES]],
        }
    for t in tests:
        exchange = str(t["name"])[len(FEEDBACK_TEST_PREFIX):]
        row = by_exchange.get(exchange) or {}
        out["tests"].append({
            "name": t["name"], "prompt": _clip(t.get("prompt")), "correction": _clip(row.get("answer")),
            "answer_was": _clip(row.get("rejected")), "answer_now": _clip(t.get("output")),
            "passed": bool(t.get("passed")), "score": t.get("score"),
            "base_passed": (t.get("base") or {}).get("passed")})
    out["fixed"] = sum(1 for t in out["tests"] if t["passed"])
    out["still_failing"] = len(out["tests"]) - out["fixed"]
    return out


def _read(path: Path):
    if not path.exists():
        return None
    import polars as pl

    return pl.read_parquet(path)


def _reasons(path: Path) -> dict[str, int]:
    """Rows the reader did not turn into examples, counted by the reason it gave."""
    frame = _read(path)
    if frame is None or frame.is_empty() or "_detail" not in frame.columns:
        return {}
    counts = frame.group_by("_detail").len().sort(["len", "_detail"], descending=[True, False])
    return {str(d): int(n) for d, n in counts.iter_rows()}


def _clip(text: Any) -> str | None:
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "…"


__all__ = ["FEEDBACK_TEST_PREFIX", "feedback_report"]

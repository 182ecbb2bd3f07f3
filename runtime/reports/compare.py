"""What changed since the project's previous run: pass rate, each test, the data funnel.

Read from the ``report.json`` every finished run leaves in ``.llmspec/runs/<run>/``: nothing
else is needed, and a run folder from an older llmspec only shortens the comparison.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

# A run that rebuilt nothing repeats an earlier run's figures: comparing with it says nothing.
_SKIP_OUTCOMES = {"noop"}


def previous_report(runs_dir: Path, run_id: str) -> dict[str, Any] | None:
    """The report of the newest run before ``run_id`` (run ids sort by time), or None."""
    try:
        names = sorted((p.name for p in Path(runs_dir).iterdir() if p.is_dir()), reverse=True)
    except OSError:
        return None
    for name in names:
        if name >= run_id:
            continue
        try:
            report = json.loads((Path(runs_dir) / name / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and report.get("outcome") not in _SKIP_OUTCOMES:
            report.setdefault("run", name)
            return report
    return None


def compare_runs(current: Mapping[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
    """The differences a reviewer asks about first, as plain data for the report pages."""
    return {"run": previous.get("run"), "outcome": previous.get("outcome"),
            "created_at": previous.get("created_at"),
            "pass_rate": _pass_rates(current, previous),
            "tests": _test_changes(current, previous),
            "sources": _funnel_changes(current, previous)}


def _pass_rates(current: Mapping[str, Any], previous: Mapping[str, Any]) -> dict[str, Any] | None:
    now = (current.get("acceptance") or {}).get("pass_rate")
    before = (previous.get("acceptance") or {}).get("pass_rate")
    if now is None and before is None:
        return None
    delta = now - before if isinstance(now, (int, float)) and isinstance(before, (int, float)) else None
    return {"now": now, "before": before, "delta": delta}


def _tests(report: Mapping[str, Any]) -> dict[str, bool]:
    return {str(t.get("name")): bool(t.get("passed")) for t in (report.get("acceptance") or {}).get("tests") or []
            if isinstance(t, Mapping)}


def _test_changes(current: Mapping[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
    now, before = _tests(current), _tests(previous)
    return {"fixed": sorted(n for n, ok in now.items() if ok and before.get(n) is False),
            "broken": sorted(n for n, ok in now.items() if not ok and before.get(n) is True),
            "added": sorted(set(now) - set(before)),
            "removed": sorted(set(before) - set(now)),
            "unchanged": sum(1 for n, ok in now.items() if before.get(n) is ok)}


def _funnel_changes(current: Mapping[str, Any], previous: Mapping[str, Any]) -> list[dict[str, Any]]:
    now, before = current.get("sources") or {}, previous.get("sources") or {}
    out = []
    for name in list(dict.fromkeys([*now, *before])):
        a, b = now.get(name) or {}, before.get(name) or {}
        rules_a, rules_b = a.get("rejected") or {}, b.get("rejected") or {}
        rules = [{"rule": r, "before": int(rules_b.get(r) or 0), "now": int(rules_a.get(r) or 0)}
                 for r in dict.fromkeys([*rules_a, *rules_b])
                 if int(rules_a.get(r) or 0) != int(rules_b.get(r) or 0)]
        row = {"source": str(name), "status": "added" if not b else ("removed" if not a else "kept"),
               "rows_in": (int(b.get("rows_in") or 0), int(a.get("rows_in") or 0)),
               "rows_kept": (int(b.get("rows_kept") or 0), int(a.get("rows_kept") or 0)),
               "rules": rules}
        row["changed"] = bool(rules) or row["status"] != "kept" or row["rows_in"][0] != row["rows_in"][1] \
            or row["rows_kept"][0] != row["rows_kept"][1]
        out.append(row)
    return out

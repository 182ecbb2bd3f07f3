"""What failed in a run's acceptance: the failed tests, each with its failed assertions, and
the failed gates, blocking ones first. The terminal summary and ``report.md`` list both, so a
reader learns which test to fix without opening the HTML report."""

from __future__ import annotations

from typing import Any, Mapping


def failed_tests(acc: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The failed tests, in suite order."""
    tests = (acc or {}).get("tests") or []
    return [t for t in tests if isinstance(t, Mapping) and not t.get("passed")]


def failed_assertions(test: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [a for a in test.get("assertions") or [] if isinstance(a, Mapping) and not a.get("passed")]


def failed_gates(acc: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The failed gates: those that stop promotion (severity error) before the warnings."""
    gates = [g for g in (acc or {}).get("gates") or [] if isinstance(g, Mapping) and not g.get("passed")]
    return sorted(gates, key=lambda g: g.get("severity") == "warn")

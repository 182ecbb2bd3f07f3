"""The acceptance gates: does the fine-tuned model earn promotion?

Each gate becomes one ``GateResult`` whose message carries the numbers behind the verdict, so
the terminal table, the reports and the CI log all say why. A failed gate of severity
``error`` stops promotion (apply exits 3); a failed ``warn`` gate is reported only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, Sequence

from llmspec.spec.expressions import Comparison, format_number, parse_comparison
from llmspec.spec.models import AcceptanceGates, GateSpec, RetentionSpec

from .retention import RetentionResult
from .runner import AcceptanceResult, TestRun

Severity = Literal["error", "warn"]


@dataclass(frozen=True)
class GateResult:
    """``name``: ``pass_rate``, ``pass_rate_by_tag:<tag>``, ``eval_loss`` or ``beats_baseline``.
    ``threshold``: the condition as text (``>= 0.9``; ``> 3`` for beats_baseline, 3 being the
    base model's passes). ``value``: the measured number, None when there was nothing to
    measure (which fails the gate)."""

    name: str
    threshold: str
    value: float | None
    passed: bool
    severity: Severity
    message: str

    @property
    def blocking(self) -> bool:
        """Failed with severity error: the run must not be promoted."""
        return not self.passed and self.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_gates(gates: AcceptanceGates, result: AcceptanceResult, *,
                   eval_loss: float | None) -> list[GateResult]:
    """Every configured gate, in a fixed order: pass_rate, pass_rate_by_tag (spec order),
    eval_loss, beats_baseline."""
    out: list[GateResult] = []
    if gates.pass_rate is not None:
        cmp, severity = _gate(gates.pass_rate)
        out.append(_rate_gate("pass_rate", cmp, severity, result.tuned, what="tests"))
    for tag, value in gates.pass_rate_by_tag.items():
        cmp, severity = _gate(value)
        runs = [r for r in result.tuned if tag in r.tags]
        out.append(_rate_gate(f"pass_rate_by_tag:{tag}", cmp, severity, runs,
                              what=f"tests tagged '{tag}'"))
    if gates.eval_loss is not None:
        cmp, severity = _gate(gates.eval_loss)
        out.append(_loss_gate(cmp, severity, eval_loss))
    baseline = gates.baseline_gate
    if baseline is not None:
        out.append(_baseline_gate(baseline.severity, result))
    return out


def evaluate_retention_gates(spec: RetentionSpec, result: RetentionResult) -> list[GateResult]:
    """``retention`` (the drop below the base on the whole suite, its per-tag figures in the
    message), ``retention_by_tag:<tag>`` for each bound set per tag, ``retention_drift`` when a
    drift bound is set."""
    tags = result.by_tag()
    worst = sorted(tags.items(), key=lambda kv: -kv[1]["drop"])
    per_tag = ", ".join(f"{t} {v['passed']}/{v['tests']} (base {v['base_passed']})" for t, v in worst)
    out = [_drop_gate("retention", spec.max_drop, spec.severity, result.drop,
                      sum(r.passed for r in result.tuned), sum(r.passed for r in result.base),
                      len(result.tests), f"general prompts ({result.suite})", extra=f"; by tag: {per_tag}")]
    for tag, bound in spec.max_drop_by_tag.items():
        v = tags.get(tag)
        if v is None:
            out.append(GateResult(f"retention_by_tag:{tag}", f"drop <= {format_number(bound)}", None, False,
                                  spec.severity, f"no prompt of {result.suite} carries the tag '{tag}'"))
            continue
        out.append(_drop_gate(f"retention_by_tag:{tag}", bound, spec.severity, v["drop"], v["passed"],
                              v["base_passed"], v["tests"], f"prompts tagged '{tag}'"))
    if spec.max_drift is not None:
        d = result.drift
        ok = d.tokens > 0 and d.delta <= spec.max_drift
        out.append(GateResult("retention_drift", f"<= {format_number(spec.max_drift)}", round(d.delta, 4), ok,
                              spec.severity,
                              f"the base model's answers cost {d.tuned_nll:.3f} nats/token under the fine-tuned "
                              f"model, {d.base_nll:.3f} under the base: drift {d.delta:+.3f}, "
                              f"{'within' if ok else 'needs at most'} {format_number(spec.max_drift)}"))
    return out


def _drop_gate(name: str, bound: float, severity: Severity, drop: float, passed: int, base_passed: int,
               total: int, what: str, extra: str = "") -> GateResult:
    ok = drop <= bound + 1e-9
    verb = "within" if ok else "more than"
    return GateResult(name, f"drop <= {format_number(bound)}", round(drop, 4), ok, severity,
                      f"fine-tuned passes {passed}/{total} {what}, base model {base_passed}/{total}: "
                      f"drop {drop:+.3f}, {verb} the allowed {format_number(bound)}{extra}")


def failed_errors(results: Sequence[GateResult]) -> list[GateResult]:
    """The failed gates of severity error: any of them stops promotion."""
    return [g for g in results if g.blocking]


def _gate(value: Any) -> tuple[Comparison, Severity]:
    # The spec validator turns every gate into a GateSpec; a spec built in code may not have.
    if isinstance(value, GateSpec):
        return parse_comparison(value.threshold), value.severity
    return parse_comparison(value), "error"


def _rate_gate(name: str, cmp: Comparison, severity: Severity, runs: Sequence[TestRun], *,
               what: str) -> GateResult:
    if not runs:
        return GateResult(name, str(cmp), None, False, severity,
                          f"no {what} ran, so a pass rate {cmp} cannot be shown")
    passed = sum(r.passed for r in runs)
    rate = passed / len(runs)
    ok = cmp.holds(rate)
    verb = "meets" if ok else "needs"
    return GateResult(name, str(cmp), rate, ok, severity,
                      f"fine-tuned passes {passed}/{len(runs)} {what} ({rate:.3f}), {verb} {cmp}")


def _loss_gate(cmp: Comparison, severity: Severity, eval_loss: float | None) -> GateResult:
    if eval_loss is None:
        return GateResult("eval_loss", str(cmp), None, False, severity,
                          f"training recorded no eval loss, so eval_loss {cmp} cannot be checked "
                          "(is split.eval_fraction 0, or did training stop before evaluating?)")
    loss = float(eval_loss)
    if math.isnan(loss):
        return GateResult("eval_loss", str(cmp), loss, False, severity,
                          f"final eval loss is NaN (training diverged), needs {cmp}")
    ok = cmp.holds(loss)
    return GateResult("eval_loss", str(cmp), loss, ok, severity,
                      f"final eval loss {format_number(round(loss, 4))}, "
                      f"{'meets' if ok else 'needs'} {cmp}")


def _baseline_gate(severity: Severity, result: AcceptanceResult) -> GateResult:
    tuned = result.passed
    total = result.total
    if result.base is None:
        return GateResult("beats_baseline", "> base", float(tuned), False, severity,
                          "the base model was not run (acceptance.baseline: none), so there is "
                          "nothing to beat")
    base = result.base_passed or 0
    ok = tuned > base
    verdict = "beats it" if ok else ("ties, and must pass more" if tuned == base
                                     else "must pass more")
    return GateResult("beats_baseline", f"> {base}", float(tuned), ok, severity,
                      f"fine-tuned passes {tuned}/{total} tests, base model {base}/"
                      f"{len(result.base)}: {verdict}")


__all__ = ["GateResult", "evaluate_gates", "evaluate_retention_gates", "failed_errors"]

"""Acceptance gates on constructed results: no model involved."""

from __future__ import annotations

import math

import pytest

from llmspec.runtime.acceptance.assertions import evaluate_test, parse_expectation
from llmspec.runtime.acceptance.gates import GateResult, evaluate_gates, failed_errors
from llmspec.runtime.acceptance.junit import write_junit
from llmspec.runtime.acceptance.runner import AcceptanceResult, TestRun, junit_cases
from llmspec.compiler.acceptance import SuiteTest
from llmspec.spec.models import AcceptanceGates

EXPECT = (parse_expectation({"contains": "refund"}),)


def _run(name: str, passed: bool, tags: tuple[str, ...] = ()) -> TestRun:
    output = "you get a refund" if passed else "no idea"
    outcome = evaluate_test(EXPECT, output, prompt=f"prompt of {name}")
    assert outcome.passed is passed
    return TestRun(name=name, prompt=f"prompt of {name}", output=output, outcome=outcome,
                   duration=0.01, tags=tags)


def _result(tuned: list[tuple[bool, tuple[str, ...]]],
            base: list[bool] | None = None) -> AcceptanceResult:
    tests = [SuiteTest(name=f"t{i}", prompt=f"prompt of t{i}", expectations=EXPECT, tags=tags)
             for i, (_, tags) in enumerate(tuned)]
    runs = [_run(t.name, ok, t.tags) for t, (ok, _) in zip(tests, tuned)]
    base_runs = None if base is None else [_run(t.name, ok, t.tags) for t, ok in zip(tests, base)]
    return AcceptanceResult(tests=tests, tuned=runs, base=base_runs)


def _gates(**kw) -> AcceptanceGates:
    return AcceptanceGates.model_validate(kw)


def test_pass_rate_fails_below_threshold_with_the_numbers():
    result = _result([(True, ())] * 6 + [(False, ())])
    [gate] = evaluate_gates(_gates(pass_rate=">= 0.9"), result, eval_loss=None)
    assert gate.name == "pass_rate"
    assert gate.threshold == ">= 0.9"
    assert gate.value == pytest.approx(6 / 7)
    assert not gate.passed and gate.severity == "error" and gate.blocking
    assert gate.message == "fine-tuned passes 6/7 tests (0.857), needs >= 0.9"
    assert failed_errors([gate]) == [gate]


def test_pass_rate_passes_at_exact_threshold():
    result = _result([(True, ())] * 9 + [(False, ())])
    [gate] = evaluate_gates(_gates(pass_rate=0.9), result, eval_loss=None)
    assert gate.passed and gate.value == pytest.approx(0.9)
    assert "9/10" in gate.message and "meets >= 0.9" in gate.message
    assert failed_errors([gate]) == []


def test_warn_severity_failure_is_not_blocking():
    result = _result([(False, ())] * 2)
    [gate] = evaluate_gates(_gates(pass_rate={"threshold": ">= 0.5", "severity": "warn"}),
                            result, eval_loss=None)
    assert not gate.passed and gate.severity == "warn" and not gate.blocking
    assert failed_errors([gate]) == []


def test_pass_rate_with_no_tests_fails():
    [gate] = evaluate_gates(_gates(pass_rate=">= 0.5"), _result([]), eval_loss=None)
    assert not gate.passed and gate.value is None
    assert "no tests ran" in gate.message


def test_pass_rate_by_tag_counts_only_tagged_tests():
    result = _result([(True, ("refunds",)), (False, ("refunds", "billing")), (True, ("billing",)),
                      (False, ())])
    gates = evaluate_gates(_gates(pass_rate_by_tag={"refunds": ">= 0.5", "billing": "== 1",
                                                    "shipping": ">= 0.1"}),
                           result, eval_loss=None)
    by_name = {g.name: g for g in gates}
    assert list(by_name) == ["pass_rate_by_tag:refunds", "pass_rate_by_tag:billing",
                             "pass_rate_by_tag:shipping"]
    refunds, billing, shipping = by_name.values()
    assert refunds.passed and refunds.value == 0.5
    assert "1/2 tests tagged 'refunds'" in refunds.message
    assert not billing.passed and billing.value == 0.5 and billing.threshold == "== 1"
    # a tag no test carries cannot show anything: it fails rather than passing vacuously
    assert not shipping.passed and shipping.value is None
    assert "tagged 'shipping'" in shipping.message


@pytest.mark.parametrize("loss, passed", [(1.2, True), (1.5, True), (1.51, False)])
def test_eval_loss_gate(loss, passed):
    [gate] = evaluate_gates(_gates(eval_loss="<= 1.5"), _result([(True, ())]), eval_loss=loss)
    assert gate.name == "eval_loss" and gate.value == loss and gate.passed is passed
    assert str(loss) in gate.message and "<= 1.5" in gate.message


def test_eval_loss_gate_without_eval_loss_fails_clearly():
    [gate] = evaluate_gates(_gates(eval_loss={"threshold": "< 2", "severity": "warn"}),
                            _result([(True, ())]), eval_loss=None)
    assert not gate.passed and gate.value is None and gate.severity == "warn"
    assert "no eval loss" in gate.message


def test_eval_loss_nan_fails():
    [gate] = evaluate_gates(_gates(eval_loss="< 100"), _result([(True, ())]),
                            eval_loss=float("nan"))
    assert not gate.passed and math.isnan(gate.value) and "NaN" in gate.message


def test_beats_baseline_needs_strictly_more_passes():
    better = _result([(True, ()), (True, ()), (False, ())], base=[True, False, False])
    [gate] = evaluate_gates(_gates(beats_baseline=True), better, eval_loss=None)
    assert gate.name == "beats_baseline" and gate.passed
    assert gate.value == 2 and gate.threshold == "> 1"
    assert gate.message == "fine-tuned passes 2/3 tests, base model 1/3: beats it"

    tie = _result([(True, ()), (False, ())], base=[False, True])
    [gate] = evaluate_gates(_gates(beats_baseline=True), tie, eval_loss=None)
    assert not gate.passed and gate.blocking and "ties" in gate.message

    worse = _result([(False, ()), (False, ())], base=[True, False])
    [gate] = evaluate_gates(_gates(beats_baseline={"severity": "warn"}), worse, eval_loss=None)
    assert not gate.passed and gate.severity == "warn" and failed_errors([gate]) == []


def test_beats_baseline_without_base_run_fails():
    [gate] = evaluate_gates(_gates(beats_baseline=True), _result([(True, ())]), eval_loss=None)
    assert not gate.passed and "not run" in gate.message


def test_disabled_gates_produce_nothing():
    assert evaluate_gates(_gates(beats_baseline={"enabled": False}), _result([(True, ())]),
                          eval_loss=None) == []
    assert evaluate_gates(AcceptanceGates(), _result([(True, ())]), eval_loss=1.0) == []


def test_all_gates_in_order_and_failed_errors_picks_error_failures():
    result = _result([(True, ("a",)), (False, ("a",))], base=[True, True])
    gates = evaluate_gates(_gates(pass_rate={"threshold": ">= 0.9", "severity": "warn"},
                                  pass_rate_by_tag={"a": ">= 0.5"}, eval_loss="<= 1",
                                  beats_baseline=True), result, eval_loss=2.0)
    assert [g.name for g in gates] == ["pass_rate", "pass_rate_by_tag:a", "eval_loss",
                                       "beats_baseline"]
    assert [g.passed for g in gates] == [False, True, False, False]
    assert [g.name for g in failed_errors(gates)] == ["eval_loss", "beats_baseline"]
    assert all(isinstance(g, GateResult) for g in gates)


def test_report_shape_with_gates_and_base():
    result = _result([(True, ("x",)), (False, ())], base=[False, False])
    result.gates = evaluate_gates(_gates(pass_rate=">= 0.5"), result, eval_loss=None)
    report = result.to_report()
    assert set(report) == {"pass_rate", "base_pass_rate", "gates", "tests"}
    assert report["pass_rate"] == 0.5 and report["base_pass_rate"] == 0.0
    assert report["gates"] == [{"name": "pass_rate", "threshold": ">= 0.5", "value": 0.5,
                                "passed": True, "severity": "error",
                                "message": "fine-tuned passes 1/2 tests (0.500), meets >= 0.5"}]
    first, second = report["tests"]
    assert set(first) == {"name", "prompt", "tags", "passed", "score", "output", "assertions",
                          "base"}
    assert first["name"] == "t0" and first["tags"] == ["x"] and first["passed"] is True
    assert first["assertions"] == [{"key": "contains", "expected": "contains 'refund'",
                                    "got": first["assertions"][0]["got"], "passed": True}]
    assert first["base"] == {"passed": False, "score": 0.0, "output": "no idea"}
    assert second["passed"] is False and second["score"] == 0.0


def test_report_without_base():
    report = _result([(True, ())]).to_report()
    assert report["base_pass_rate"] is None and report["tests"][0]["base"] is None


def test_junit_cases_carry_base_answers(tmp_path):
    result = _result([(True, ("refunds",)), (False, ())], base=[False, True])
    cases = junit_cases(result)
    assert [c.name for c in cases] == ["t0", "t1"]
    assert cases[0].passed and cases[0].classname == "acceptance.refunds"
    assert cases[0].base_passed is False and cases[0].base_output == "no idea"
    assert not cases[1].passed and "refund" in cases[1].details
    path = write_junit(tmp_path / "acceptance.junit.xml", "demo", cases)
    text = path.read_text()
    assert 'failures="1"' in text and "base model: FAILED" in text

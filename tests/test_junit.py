import os
import stat
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pytest

from llmspec.runtime.acceptance.assertions import evaluate_test, parse_expectations
from llmspec.runtime.acceptance.junit import (JUnitCase, case_from_outcome, classname_for,
                                              failure_text, write_junit)

REFUND_TEST = parse_expectations([
    {"icontains": "refund"},
    {"contains": "30 days", "weight": 2},
    {"not_icontains": "as an ai"},
])


def _cases():
    prompt = "Can I return my order?"
    tuned = "Yes: a refund is possible within 30 days."
    base = "As an AI, I cannot say."
    good = case_from_outcome(
        "refund window", evaluate_test(REFUND_TEST, tuned), tags=["billing"], time=1.25,
        prompt=prompt, output=tuned, base_outcome=evaluate_test(REFUND_TEST, base),
        base_output=base)

    wrong = "Sure, refunds are fine."
    bad = case_from_outcome(
        "refund window strict", evaluate_test(REFUND_TEST, wrong), time=0.5, prompt=prompt,
        output=wrong, base_outcome=evaluate_test(REFUND_TEST, base), base_output=base)

    ppl_test = parse_expectations([{"perplexity": {"reference": "Five days.", "max": 8}}])
    errored = case_from_outcome("shipping time", evaluate_test(ppl_test, "Soon."),
                                output="Soon.")
    skipped = JUnitCase(name="needs gpu", skipped="not run on CPU")
    return [good, bad, errored, skipped]


def _read(path):
    return ET.parse(path).getroot()


def test_round_trip_counts_and_structure(tmp_path):
    path = write_junit(tmp_path / "acceptance.junit.xml", "llmspec acceptance", _cases(),
                       properties={"run": "r-001"},
                       timestamp=datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc))
    root = _read(path)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    for el in (root, suite):
        assert (el.get("tests"), el.get("failures"), el.get("errors"), el.get("skipped")) == \
            ("4", "1", "1", "1")
        assert float(el.get("time")) == pytest.approx(1.75)
    assert suite.get("name") == "llmspec acceptance"
    assert suite.get("timestamp") == "2024-05-01T12:00:00"

    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["refund window", "refund window strict",
                                              "shipping time", "needs gpu"]
    assert cases[0].get("classname") == "acceptance.billing"
    assert cases[1].get("classname") == "acceptance"
    assert cases[0].get("time") == "1.250"
    assert list(cases[0].iter("failure")) == [] and list(cases[0].iter("error")) == []
    assert len(cases[1].findall("failure")) == 1
    assert len(cases[2].findall("error")) == 1
    assert len(cases[3].findall("skipped")) == 1

    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    # the base model was judged on the two refund tests and failed both
    assert props == {"run": "r-001", "base_model.tests": "2", "base_model.passed": "0"}


def test_failure_lists_each_failed_assertion_expected_vs_got(tmp_path):
    path = write_junit(tmp_path / "j.xml", "s", _cases())
    failure = _read(path).findall("testsuite/testcase")[1].find("failure")
    assert failure.get("message").startswith(
        "1 of 3 assertions failed: expected output to contain '30 days'")
    text = failure.text
    assert "- contains (weight 2)" in text
    assert "expected: contains '30 days'" in text
    assert "got:      'Sure, refunds are fine.'" in text
    assert "icontains" not in text  # only failed assertions are listed


def test_error_carries_the_reason(tmp_path):
    path = write_junit(tmp_path / "j.xml", "s", _cases())
    error = _read(path).findall("testsuite/testcase")[2].find("error")
    assert "no perplexity function" in error.get("message")
    assert "could not be evaluated" in error.text


def test_system_out_compares_with_the_base_model(tmp_path):
    path = write_junit(tmp_path / "j.xml", "s", _cases())
    out = _read(path).findall("testsuite/testcase")[0].find("system-out").text
    assert "=== prompt ===\nCan I return my order?" in out
    assert "=== fine-tuned model: PASSED, score 1.00 ===\nYes: a refund is possible" in out
    # base: icontains refund fails (1), contains 30 days fails (2), not_icontains "as an ai"
    # fails (1): score 0
    assert "=== base model: FAILED, score 0.00 ===\nAs an AI, I cannot say." in out
    assert out.index("fine-tuned model") < out.index("base model")


def test_output_with_characters_xml_forbids_still_parses(tmp_path):
    nasty = "ok\x00\x07 <tag> & \"quotes\" \ud800 end"
    outcome = evaluate_test(parse_expectations([{"contains": "missing"}]), nasty)
    case = case_from_outcome("nasty\x1b", outcome, output=nasty, base_output=nasty)
    root = _read(write_junit(tmp_path / "j.xml", "suite\x01", [case]))
    testcase = root.find("testsuite/testcase")
    assert testcase.get("name") == "nasty\\u001b"
    out = testcase.find("system-out").text
    assert "ok\\u0000\\u0007 <tag> & \"quotes\" \\ud800 end" in out
    assert "\\x07" in testcase.find("failure").text  # repr in got


def test_write_is_atomic_and_replaces(tmp_path, monkeypatch):
    path = tmp_path / "reports" / "acceptance.junit.xml"
    write_junit(path, "first", [JUnitCase(name="a")])
    assert _read(path).find("testsuite").get("name") == "first"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644

    write_junit(path, "second", [JUnitCase(name="a"), JUnitCase(name="b", passed=False)])
    assert _read(path).find("testsuite").get("failures") == "1"
    assert sorted(p.name for p in path.parent.iterdir()) == ["acceptance.junit.xml"]

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ET.ElementTree, "write", boom)
    with pytest.raises(OSError, match="disk full"):
        write_junit(path, "third", [JUnitCase(name="c")])
    monkeypatch.undo()
    assert _read(path).find("testsuite").get("name") == "second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["acceptance.junit.xml"]


def test_empty_suite(tmp_path):
    root = _read(write_junit(tmp_path / "j.xml", "empty", []))
    suite = root.find("testsuite")
    assert suite.get("tests") == "0" and suite.findall("testcase") == []
    assert suite.find("properties") is None


def test_case_status_precedence():
    assert JUnitCase(name="x").status == "passed"
    assert JUnitCase(name="x", passed=False).status == "failure"
    assert JUnitCase(name="x", passed=False, error="boom").status == "error"
    assert JUnitCase(name="x", error="boom", skipped="later").status == "skipped"


def test_classname_for():
    assert classname_for() == "acceptance"
    assert classname_for(["billing", "refunds v2", "a.b", "!!"]) == \
        "acceptance.billing.refunds_v2.a_b"


def test_failure_text_is_empty_for_a_passing_test():
    outcome = evaluate_test(REFUND_TEST, "Refund within 30 days.")
    assert outcome.passed and failure_text(outcome) == ""
    case = case_from_outcome("ok", outcome)
    assert case.message is None and case.details is None and case.status == "passed"

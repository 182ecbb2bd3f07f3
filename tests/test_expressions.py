import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmspec.spec.expressions import (OPERATORS, Comparison, gate_range_check,
                                      parse_comparison)


@pytest.mark.parametrize("text, op, value", [
    (">= 0.9", ">=", 0.9),
    ("<= 1.5", "<=", 1.5),
    ("> 0", ">", 0.0),
    ("== 1", "==", 1.0),
    ("< 2.5e-1", "<", 0.25),
    (">=0.9", ">=", 0.9),
    ("  <  3  ", "<", 3.0),
    ("0.9", ">=", 0.9),
    ("-1", ">=", -1.0),
    (".5", ">=", 0.5),
    ("1E3", ">=", 1000.0),
    (0.9, ">=", 0.9),
    (2, ">=", 2.0),
])
def test_parse_accepted_forms(text, op, value):
    cmp = parse_comparison(text)
    assert (cmp.op, cmp.value) == (op, value)
    assert isinstance(cmp.value, float)


@pytest.mark.parametrize("text, x, expected", [
    (">= 0.9", 0.9, True), (">= 0.9", 0.89, False),
    ("> 0", 0.0, False), ("> 0", 1e-9, True),
    ("<= 1.5", 1.5, True), ("<= 1.5", 1.6, False),
    ("< 2.5e-1", 0.25, False), ("< 2.5e-1", 0.2499, True),
    ("== 1", 1, True), ("== 1", 0.999, False),
    ("0.5", 0.5, True), ("0.5", 0.4, False),
])
def test_holds(text, x, expected):
    assert parse_comparison(text).holds(x) is expected


def test_equality_tolerates_float_rounding():
    accumulated = sum([0.1] * 10)
    assert accumulated != 1.0
    assert parse_comparison("== 1").holds(accumulated)


@pytest.mark.parametrize("op", list(OPERATORS))
def test_nan_and_none_never_hold(op):
    cmp = Comparison(op, 1.0)
    assert not cmp.holds(math.nan)
    assert not cmp.holds(None)


@pytest.mark.parametrize("text, canonical", [
    (" <2.5e-1", "< 0.25"), (1, ">= 1"), ("0.9", ">= 0.9"), ("==1.0", "== 1"),
    (">= 1e-5", ">= 1e-05"),
])
def test_str_is_canonical(text, canonical):
    assert str(parse_comparison(text)) == canonical


@given(op=st.sampled_from(list(OPERATORS)),
       value=st.floats(allow_nan=False, allow_infinity=False))
def test_str_round_trips(op, value):
    cmp = Comparison(op, value)
    assert parse_comparison(str(cmp)) == cmp


@pytest.mark.parametrize("text, fragment", [
    ("=> 0.9", "did you mean '>='"),
    ("=< 0.9", "did you mean '<='"),
    ("= 1", "did you mean '=='"),
    ("!= 1", "unknown operator '!='"),
    ("90%", "fraction"),
    (">= 90%", "fraction"),
    ("", "empty comparison"),
    ("   ", "empty comparison"),
    (">=", "has no number"),
    (">= abc", "'abc' is not a number"),
    (">= nan", "'nan' is not a number"),
    ("0.9 >=", "expected an operator"),
    ("high", "expected an operator"),
    (True, "boolean"),
    (None, "NoneType"),
    ([0.9], "list"),
    (math.inf, "finite"),
    (math.nan, "finite"),
])
def test_bad_input_raises_precise_value_error(text, fragment):
    with pytest.raises(ValueError) as info:
        parse_comparison(text)
    assert fragment in str(info.value)


def test_error_names_the_accepted_forms():
    with pytest.raises(ValueError, match=r">=, <=, >, <, ==.*bare number"):
        parse_comparison("about 0.9")


def test_comparison_rejects_bad_construction():
    with pytest.raises(ValueError, match="unknown comparison operator"):
        Comparison("=>", 1.0)
    with pytest.raises(ValueError, match="finite"):
        Comparison(">=", math.inf)
    with pytest.raises(ValueError, match="must be a number"):
        Comparison(">=", "1")


@pytest.mark.parametrize("text", [">= 0.9", "> 0", "< 1", "== 1", "== 0", "<= 0.5"])
def test_gate_range_check_accepts_meaningful_gates(text):
    assert gate_range_check(parse_comparison(text)) is None


@pytest.mark.parametrize("text, fragment", [
    (">= 1.5", "outside [0, 1]"),
    (">= 90", "outside [0, 1]"),
    (">= -0.1", "outside [0, 1]"),
    ("> 1", "can never pass"),
    ("< 0", "can never pass"),
])
def test_gate_range_check_rejects_impossible_gates(text, fragment):
    with pytest.raises(ValueError) as info:
        gate_range_check(parse_comparison(text), what="pass_rate")
    assert fragment in str(info.value)
    assert "pass_rate" in str(info.value)


def test_gate_range_check_hints_at_percentages():
    with pytest.raises(ValueError, match="'>= 0.9' for 90%"):
        gate_range_check(parse_comparison(">= 90"))


@pytest.mark.parametrize("text", [">= 0", "<= 1", "0"])
def test_gate_range_check_warns_on_gates_that_cannot_fail(text):
    warning = gate_range_check(parse_comparison(text), what="pass_rate")
    assert warning is not None and "can never fail" in warning


def test_gate_range_check_custom_range():
    assert gate_range_check(parse_comparison("<= 50"), 0, 100) is None
    with pytest.raises(ValueError, match="outside"):
        gate_range_check(parse_comparison("<= 150"), 0, 100)

"""Gate comparisons such as ``">= 0.9"``: parsed once at validate time, checked after a run.

Stdlib only, because ``llmspec validate`` imports it. Parsing raises ``ValueError`` with a
message that names what was wrong and the accepted forms; the spec loader turns that into a
``Diagnostic`` with the position it knows and we don't.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Callable

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": lambda x, y: math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12),
}

ACCEPTED_FORMS = ("an operator (>=, <=, >, <, ==) followed by a number, e.g. '>= 0.9' or "
                  "'< 2.5e-1', or a bare number, which means '>='")

# Operators people type from other languages; mapped to a precise hint instead of a vague error.
_MISTYPED = {"=>": ">=", "=<": "<=", "=": "==", "≥": ">=", "≤": "<=", "===": "=="}

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_FULL = re.compile(rf"^\s*(?P<op>>=|<=|==|>|<)?\s*(?P<num>{_NUMBER})\s*$", re.ASCII)
_LEADING_OP = re.compile(r"^\s*(?P<op>[<>=!≥≤]+)")


@dataclass(frozen=True)
class Comparison:
    """``x <op> value``. ``==`` tolerates float rounding (``1 - 1e-15 == 1`` holds)."""

    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"unknown comparison operator {self.op!r}; use one of "
                             f"{', '.join(OPERATORS)}")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise ValueError(f"comparison value must be a number, not {self.value!r}")
        if not math.isfinite(self.value):
            raise ValueError(f"comparison value must be a finite number, not {self.value!r}")
        object.__setattr__(self, "value", float(self.value))

    def holds(self, x: float) -> bool:
        # NaN compares false to everything, so a metric that came out NaN fails its gate
        # rather than silently passing one written with '<'.
        if x is None or isinstance(x, bool) or math.isnan(float(x)):
            return False
        return OPERATORS[self.op](float(x), self.value)

    def __str__(self) -> str:
        return f"{self.op} {format_number(self.value)}"


def format_number(value: float) -> str:
    """Shortest text that reads back as the same float, without a useless ``.0``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def parse_comparison(text: str | int | float) -> Comparison:
    """Parse ``">= 0.9"``, ``"<2.5e-1"``, ``"== 1"``, ``0.9`` (meaning ``>= 0.9``) ..."""
    if isinstance(text, bool):
        # YAML reads `yes`/`true` as a bool; a bool is an int in Python and would become 1.
        raise ValueError(f"invalid comparison {text!r}: a boolean is not a threshold; "
                         f"expected {ACCEPTED_FORMS}")
    if isinstance(text, (int, float)):
        if not math.isfinite(text):
            raise ValueError(f"invalid comparison {text!r}: the number must be finite")
        return Comparison(">=", float(text))
    if not isinstance(text, str):
        raise ValueError(f"invalid comparison {text!r} (a {type(text).__name__}): "
                         f"expected {ACCEPTED_FORMS}")

    m = _FULL.match(text)
    if m:
        return Comparison(m.group("op") or ">=", float(m.group("num")))
    raise ValueError(_explain(text))


def _explain(text: str) -> str:
    shown = repr(text)
    if not text.strip():
        return f"empty comparison: expected {ACCEPTED_FORMS}"
    if text.strip().endswith("%"):
        return (f"invalid comparison {shown}: percentages are not accepted; write the rate as "
                f"a fraction, e.g. '>= 0.9' for 90%")
    op_match = _LEADING_OP.match(text)
    if op_match:
        op = op_match.group("op")
        rest = text[op_match.end():].strip()
        if op in _MISTYPED:
            return f"invalid comparison {shown}: unknown operator {op!r}, did you mean " \
                   f"{_MISTYPED[op]!r}? Expected {ACCEPTED_FORMS}"
        if op not in OPERATORS:
            return (f"invalid comparison {shown}: unknown operator {op!r}; "
                    f"expected {ACCEPTED_FORMS}")
        if not rest:
            return f"invalid comparison {shown}: operator {op!r} has no number after it"
        return (f"invalid comparison {shown}: {rest!r} is not a number; "
                f"expected {ACCEPTED_FORMS}")
    return f"invalid comparison {shown}: expected {ACCEPTED_FORMS}"


def gate_range_check(cmp: Comparison, lo: float = 0.0, hi: float = 1.0, *,
                     what: str = "this value") -> str | None:
    """Check a gate on a quantity known to lie in ``[lo, hi]`` (a pass rate: ``[0, 1]``).

    Raises ``ValueError`` when the threshold is outside the range or the gate can never pass
    (``> 1`` on a rate). Returns a warning text when the gate can never fail (``>= 0``), else
    None: that is legal but almost certainly not what the author meant.
    """
    if not lo <= cmp.value <= hi:
        hint = ("; a rate is a fraction, e.g. '>= 0.9' for 90%"
                if (lo, hi) == (0, 1) and 1 < cmp.value <= 100 else "")
        raise ValueError(f"gate '{cmp}' on {what}: {format_number(cmp.value)} is outside "
                         f"[{format_number(lo)}, {format_number(hi)}], the range {what} can "
                         f"take{hint}")
    never = ((cmp.op == ">" and cmp.value >= hi) or (cmp.op == "<" and cmp.value <= lo))
    if never:
        raise ValueError(f"gate '{cmp}' on {what} can never pass: {what} lies in "
                         f"[{format_number(lo)}, {format_number(hi)}]")
    always = ((cmp.op == ">=" and cmp.value <= lo) or (cmp.op == "<=" and cmp.value >= hi))
    if always:
        return (f"gate '{cmp}' on {what} can never fail: {what} always lies in "
                f"[{format_number(lo)}, {format_number(hi)}]")
    return None


__all__ = ["ACCEPTED_FORMS", "Comparison", "OPERATORS", "format_number", "gate_range_check",
           "parse_comparison"]

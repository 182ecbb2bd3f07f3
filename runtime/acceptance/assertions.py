"""Evaluating acceptance assertions on model outputs.

The language itself (kinds, parsing, descriptions) is `llmspec.spec.assertions`: validate checks
a spec with it and imports nothing heavy. ``evaluate`` checks one model output.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from llmspec.spec.assertions import (
    ASSERTION_KINDS, DEFAULT_METRIC, NEGATION_PREFIX, PHRASES, Expectation, PerplexityArg, SimilarArg,
    excerpt, expectation_json_schema, json_type, number_text, parse_expectation, parse_expectations, quote_list,
    shorten,
)

from .similarity import similarity

PerplexityFn = Callable[[str, str], float]
"""``(prompt, reference) -> perplexity`` of the reference answer under the model."""


@dataclass(frozen=True)
class AssertionResult:
    """The verdict of one assertion on one output.

    ``expected`` says what was asserted, ``got`` what was observed (an excerpt of the output or
    a measured value such as ``rouge_l=0.42``), ``message`` one line for a human. ``value`` is
    the measured number for similar / perplexity / max_chars. ``error`` is set when the
    assertion could not be evaluated at all (e.g. perplexity without a model); such a result
    never passes, negated or not.
    """

    kind: str
    negated: bool
    weight: float
    passed: bool
    expected: str
    got: str
    message: str
    value: float | None = None
    error: str | None = None

    @property
    def key(self) -> str:
        return NEGATION_PREFIX + self.kind if self.negated else self.kind


@dataclass(frozen=True)
class TestOutcome:
    """All assertions of one test on one output. ``passed``: every assertion passed.
    ``score``: weighted fraction of assertions that passed, in [0, 1]."""

    __test__ = False  # not a pytest test class, despite the name

    passed: bool
    score: float
    results: tuple[AssertionResult, ...] = field(default_factory=tuple)

    @property
    def failures(self) -> list[AssertionResult]:
        return [r for r in self.results if not r.passed]

    @property
    def errored(self) -> bool:
        return any(r.error is not None for r in self.results)


# --------------------------------------------------------------------------- evaluation

class _CannotEvaluate(Exception):
    """The assertion has no verdict (as opposed to failing)."""


Check = tuple[bool, str, "float | None"]  # (holds, got, measured value)


def evaluate(exp: Expectation, output: str, *, prompt: str = "",
             perplexity_fn: PerplexityFn | None = None) -> AssertionResult:
    """Check one expectation against one model output."""
    expected = exp.describe()
    try:
        holds, got, value = _CHECKS[exp.kind](exp.arg, output, prompt, perplexity_fn)
    except _CannotEvaluate as exc:
        return AssertionResult(kind=exp.kind, negated=exp.negated, weight=exp.weight,
                               passed=False, expected=expected, got="n/a",
                               message=f"{exp.key}: cannot evaluate: {exc}", error=str(exc))
    passed = holds != exp.negated
    if passed:
        message = f"ok: {expected}"
    else:
        infinitive = PHRASES[exp.kind](exp.arg)[1]
        message = f"expected output {'NOT ' if exp.negated else ''}{infinitive}, got {got}"
    return AssertionResult(kind=exp.kind, negated=exp.negated, weight=exp.weight,
                           passed=passed, expected=expected, got=got, message=message,
                           value=value)


def evaluate_test(expectations: Sequence[Expectation], output: str, *, prompt: str = "",
                  perplexity_fn: PerplexityFn | None = None) -> TestOutcome:
    """Check all of a test's expectations; passes only if every one passes."""
    if not expectations:
        raise ValueError("a test needs at least one expectation")
    results = tuple(evaluate(e, output, prompt=prompt, perplexity_fn=perplexity_fn)
                    for e in expectations)
    total = sum(r.weight for r in results)
    score = sum(r.weight for r in results if r.passed) / total
    return TestOutcome(passed=all(r.passed for r in results), score=score, results=results)


def _check_equals(arg: str, output: str, *_: Any) -> Check:
    text = output.strip()
    return text == arg.strip(), excerpt(text), None


def _check_contains(arg: str, output: str, *_: Any) -> Check:
    return _found(output.find(arg), len(arg), output)


def _check_icontains(arg: str, output: str, *_: Any) -> Check:
    # casefold, not lower: 'STRASSE' should match 'straße'.
    folded = output.casefold()
    pos = folded.find(arg.casefold())
    if pos >= 0 and len(folded) != len(output):
        # casefold changed lengths ('ß' -> 'ss'), so pos is not an index into the output.
        return True, f"found in {excerpt(output)}", None
    return _found(pos, len(arg), output)


def _found(pos: int, width: int, output: str) -> Check:
    if pos < 0:
        return False, excerpt(output), None
    return True, f"found at char {pos}: {excerpt(output, around=(pos, pos + width))}", None


def _check_contains_any(arg: tuple[str, ...], output: str, *_: Any) -> Check:
    present = [s for s in arg if s in output]
    if present:
        return True, f"found {present[0]!r}", None
    return False, f"none of them in {excerpt(output)}", None


def _check_contains_all(arg: tuple[str, ...], output: str, *_: Any) -> Check:
    missing = [s for s in arg if s not in output]
    if missing:
        return False, f"missing {quote_list(missing)} in {excerpt(output)}", None
    return True, f"all {len(arg)} found", None


def _check_starts_with(arg: str, output: str, *_: Any) -> Check:
    text = output.lstrip()
    return text.startswith(arg), excerpt(text), None


def _check_regex(arg: str, output: str, *_: Any) -> Check:
    # Polars' Rust engine, as cleaning uses: linear in the output, so a model's reply can never
    # make a pattern backtrack for ever (Python's re takes exponential time on `(\w+\s?)+$`).
    import polars as pl

    from llmspec.spec.regex import rust_syntax

    text = pl.Series([output], dtype=pl.String)
    try:
        pattern = rust_syntax(arg)
        at = text.str.find(pattern).item()
        matched = text.str.extract(pattern, 0).item() if at is not None else None
    except pl.exceptions.PolarsError as exc:
        why = str(exc).split("This error occurred")[0].strip()
        raise _CannotEvaluate(f"the pattern does not compile in Rust regex syntax: {why}") from None
    if at is None:
        return False, excerpt(output), None
    start = len(output.encode("utf-8")[:at].decode("utf-8", errors="ignore"))  # Polars gives a byte offset
    return True, f"matched {excerpt(matched or '')} at char {start}", None


def _check_is_json(arg: bool, output: str, *_: Any) -> Check:
    try:
        doc = parse_json_output(output)
    except ValueError as exc:
        return False, f"not JSON ({exc}): {excerpt(output)}", None
    return True, f"valid JSON {json_type(doc)}", None


def _check_json_schema(schema: dict, output: str, *_: Any) -> Check:
    try:
        doc = parse_json_output(output)
    except ValueError as exc:
        return False, f"not JSON ({exc}): {excerpt(output)}", None
    from jsonschema.exceptions import best_match
    from referencing.exceptions import Unresolvable

    from .json_schema import linear_validator

    try:
        error = best_match(linear_validator(schema).iter_errors(doc))
    except (Unresolvable, RecursionError) as exc:
        # parse_expectation refuses such schemas at validate; a schema built elsewhere lands here
        raise _CannotEvaluate(f"the schema cannot be used: {type(exc).__name__}: {shorten(str(exc))}") from None
    if error is None:
        return True, "valid against the schema", None
    where = getattr(error, "json_path", None) or "$"
    return False, f"{where}: {shorten(error.message)}", None


def _check_min_chars(limit: int, output: str, *_: Any) -> Check:
    n = len(output.strip())
    return n >= limit, f"{n} chars", float(n)


def _check_max_chars(limit: int, output: str, *_: Any) -> Check:
    n = len(output.strip())
    return n <= limit, f"{n} chars", float(n)


def _check_similar(arg: SimilarArg, output: str, *_: Any) -> Check:
    score = similarity(arg.metric, output, arg.reference)
    return score >= arg.threshold, f"{arg.metric}={number_text(score)}", score


def _check_perplexity(arg: PerplexityArg, output: str, prompt: str,
                      perplexity_fn: PerplexityFn | None) -> Check:
    if perplexity_fn is None:
        raise _CannotEvaluate("perplexity needs the model to score the reference answer, but "
                              "no perplexity function was given to the evaluator")
    try:
        ppl = float(perplexity_fn(prompt, arg.reference))
    except Exception as exc:  # a model failure on one test must not abort the others
        raise _CannotEvaluate(f"computing perplexity failed: {type(exc).__name__}: {exc}"
                              ) from exc
    if math.isnan(ppl):
        raise _CannotEvaluate("the model gave a NaN perplexity for the reference")
    return ppl <= arg.max, f"perplexity={number_text(ppl)}", ppl


_CHECKS: dict[str, Callable[..., Check]] = {
    "equals": _check_equals,
    "contains": _check_contains,
    "icontains": _check_icontains,
    "contains_any": _check_contains_any,
    "contains_all": _check_contains_all,
    "starts_with": _check_starts_with,
    "regex": _check_regex,
    "is_json": _check_is_json,
    "json_schema": _check_json_schema,
    "min_chars": _check_min_chars,
    "max_chars": _check_max_chars,
    "similar": _check_similar,
    "perplexity": _check_perplexity,
}

# --------------------------------------------------------------------------- JSON output

_FENCE = re.compile(r"\A```[ \t]*(?:json)?[ \t]*\n?(?P<body>.*?)\n?[ \t]*```\Z",
                    re.DOTALL | re.IGNORECASE)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_output(output: str) -> Any:
    """Parse a model's output as strict JSON (no NaN/Infinity), tolerating surrounding
    whitespace and one Markdown code fence (```json ... ``` or ``` ... ```) around all of it.
    Text before or after the fence is not tolerated. Raises ``ValueError``."""
    text = output.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group("body").strip()
    if not text:
        raise ValueError("empty output")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None



__all__ = [
    "ASSERTION_KINDS", "AssertionResult", "DEFAULT_METRIC", "Expectation", "NEGATION_PREFIX",
    "PerplexityArg", "PerplexityFn", "SimilarArg", "TestOutcome", "evaluate", "evaluate_test",
    "expectation_json_schema", "parse_expectation", "parse_expectations", "parse_json_output",
]

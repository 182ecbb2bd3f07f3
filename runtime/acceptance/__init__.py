"""Acceptance tests of a fine-tuned model: the assertion language, text similarity and the
JUnit report. Everything here is stdlib-only at import time, so the spec validator can use
``parse_expectation`` without loading a model stack."""

from .assertions import (ASSERTION_KINDS, AssertionResult, Expectation, PerplexityArg,
                         PerplexityFn, SimilarArg, TestOutcome, evaluate, evaluate_test,
                         expectation_json_schema, parse_expectation, parse_expectations,
                         parse_json_output)
from .junit import JUnitCase, case_from_outcome, classname_for, failure_text, write_junit
from .similarity import METRICS, rouge_l, similarity, token_f1

__all__ = [
    "ASSERTION_KINDS", "AssertionResult", "Expectation", "JUnitCase", "METRICS", "PerplexityArg",
    "PerplexityFn", "SimilarArg", "TestOutcome", "case_from_outcome", "classname_for",
    "evaluate", "evaluate_test", "expectation_json_schema", "failure_text", "parse_expectation",
    "parse_expectations", "parse_json_output", "rouge_l", "similarity", "token_f1",
    "write_junit",
]

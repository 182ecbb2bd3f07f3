import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmspec.runtime.acceptance.assertions import (ASSERTION_KINDS, Expectation, PerplexityArg,
                                                   SimilarArg, evaluate, evaluate_test,
                                                   expectation_json_schema, parse_expectation,
                                                   parse_expectations, parse_json_output)
from llmspec.runtime.acceptance.similarity import (lcs_length, rouge_l, similarity,
                                                   squad_normalize, token_f1)

ANSWER_SCHEMA = {
    "type": "object",
    "required": ["answer", "confidence"],
    "properties": {"answer": {"type": "string"},
                   "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
}

# (expect item, model output, should it pass). Every kind has a passing and a failing case;
# the negation test below replays all of them with `not_`.
CASES = [
    ({"equals": "Paris"}, "  Paris\n", True),
    ({"equals": "Paris"}, "Paris.", False),
    ({"equals": "Paris"}, "paris", False),
    ({"equals": ""}, " \n", True),
    ({"contains": "refund"}, "You can get a refund.", True),
    ({"contains": "Refund"}, "You can get a refund.", False),
    ({"icontains": "REFUND"}, "You can get a Refund.", True),
    ({"icontains": "STRASSE"}, "Die Hauptstraße 5", True),
    ({"icontains": "refund"}, "No money back.", False),
    ({"contains_any": ["refund", "return"]}, "You may return it.", True),
    ({"contains_any": ["refund", "return"]}, "Keep it.", False),
    ({"contains_all": ["refund", "days"]}, "A refund takes 5 days.", True),
    ({"contains_all": ["refund", "days"]}, "A refund is possible.", False),
    ({"starts_with": "Yes"}, "\n  Yes, you can.", True),
    ({"starts_with": "Yes"}, "No. Yes.", False),
    ({"regex": r"\b\d{3}-\d{4}\b"}, "Call 555-1234 today.", True),
    ({"regex": r"^\d+$"}, "12a", False),
    ({"regex": "(?i)hello"}, "HELLO there", True),
    ({"is_json": True}, '{"a": 1}', True),
    ({"is_json": True}, '```json\n{"a": 1}\n```', True),
    ({"is_json": True}, "```\n[1, 2]\n```\n", True),
    ({"is_json": True}, '```JSON {"a": 1}```', True),
    ({"is_json": True}, 'Sure! {"a": 1}', False),
    ({"is_json": True}, "{'a': 1}", False),
    ({"is_json": True}, '{"a": NaN}', False),
    ({"is_json": True}, "", False),
    ({"json_schema": ANSWER_SCHEMA}, '{"answer": "Paris", "confidence": 0.9}', True),
    ({"json_schema": ANSWER_SCHEMA}, '```json\n{"answer": "Paris", "confidence": 1}\n```', True),
    ({"json_schema": ANSWER_SCHEMA}, '{"answer": "Paris", "confidence": 1.5}', False),
    ({"json_schema": ANSWER_SCHEMA}, '{"answer": "Paris"}', False),
    ({"json_schema": ANSWER_SCHEMA}, "Paris, quite sure", False),
    ({"max_chars": 5}, "  hello \n", True),
    ({"max_chars": 4}, "hello", False),
    ({"max_chars": 0}, "", True),
    ({"min_chars": 5}, "  hello \n", True),
    ({"min_chars": 6}, "hello", False),
    ({"min_chars": 0}, "", True),
    # rouge_l("the cat sat on the mat", "the cat is on the mat") = 5/6 (worked out below)
    ({"similar": {"reference": "the cat is on the mat", "threshold": 0.8}},
     "The cat sat on the mat.", True),
    ({"similar": {"reference": "the cat is on the mat", "threshold": 0.85}},
     "The cat sat on the mat.", False),
    # token_f1 of the same pair = 0.75: the threshold is inclusive
    ({"similar": {"reference": "the cat is on the mat", "threshold": 0.75, "metric": "token_f1"}},
     "The cat sat on the mat.", True),
    ({"similar": {"reference": "the cat is on the mat", "threshold": 0.76, "metric": "token_f1"}},
     "The cat sat on the mat.", False),
]


def _negate(item: dict) -> dict:
    return {("not_" + k if k != "weight" else k): v for k, v in item.items()}


@pytest.mark.parametrize("item, output, should_pass", CASES)
def test_assertion(item, output, should_pass):
    result = evaluate(parse_expectation(item), output)
    assert result.passed is should_pass, result.message
    assert result.error is None
    assert result.negated is False
    if should_pass:
        assert result.message.startswith("ok: ")
    else:
        assert result.message.startswith("expected output ")
        assert result.got


@pytest.mark.parametrize("item, output, should_pass", CASES)
def test_negated_assertion_inverts_and_says_so(item, output, should_pass):
    exp = parse_expectation(_negate(item))
    assert exp.negated and exp.key.startswith("not_")
    result = evaluate(exp, output)
    assert result.passed is (not should_pass)
    assert result.expected.startswith("NOT ")
    if not result.passed:
        assert result.message.startswith("expected output NOT to ")


def test_every_kind_is_covered_by_a_case():
    covered = {next(k for k in item if k != "weight") for item, _, _ in CASES}
    assert covered | {"perplexity"} == set(ASSERTION_KINDS)


def test_failure_messages_show_expected_and_got():
    r = evaluate(parse_expectation({"contains": "refund"}), "We never give money back.")
    assert r.expected == "contains 'refund'"
    assert r.got == "'We never give money back.'"
    assert r.message == "expected output to contain 'refund', got 'We never give money back.'"

    r = evaluate(parse_expectation({"not_contains": "refund"}), "You get a refund.")
    assert r.message.startswith("expected output NOT to contain 'refund', got found at char 10")

    r = evaluate(parse_expectation({"contains_all": ["refund", "days", "receipt"]}),
                 "A refund takes days.")
    assert "missing ['receipt']" in r.got


def test_json_schema_failure_points_at_the_field():
    r = evaluate(parse_expectation({"json_schema": ANSWER_SCHEMA}),
                 '{"answer": 3, "confidence": 0.5}')
    assert not r.passed
    assert r.got.startswith("$.answer: 3 is not of type 'string'")


def test_similar_reports_the_measured_value():
    item = {"similar": {"reference": "the cat is on the mat", "threshold": 0.9}}
    r = evaluate(parse_expectation(item), "The cat sat on the mat.")
    assert r.got == "rouge_l=0.833"
    assert r.value == pytest.approx(5 / 6)


def test_min_chars_reports_length_and_reads_in_messages():
    exp = parse_expectation({"min_chars": 10})
    r = evaluate(exp, " hello ")
    assert not r.passed and r.got == "5 chars"
    assert parse_expectation(exp.to_dict()) == exp
    assert parse_expectation({"min_chars": 10.0}).arg == 10


def test_max_chars_reports_length():
    r = evaluate(parse_expectation({"max_chars": 3}), " hello ")
    assert (r.passed, r.got, r.value) == (False, "5 chars", 5.0)


def test_long_output_is_excerpted_around_the_match():
    output = "x" * 500 + " refund " + "y" * 500
    r = evaluate(parse_expectation({"not_contains": "refund"}), output)
    assert not r.passed
    assert "refund" in r.got
    assert len(r.got) < 200


# ---------------------------------------------------------------- perplexity

def test_perplexity_uses_prompt_and_reference():
    calls = []

    def ppl(prompt, reference):
        calls.append((prompt, reference))
        return 4.5

    exp = parse_expectation({"perplexity": {"reference": "Five days.", "max": 10}})
    r = evaluate(exp, "ignored output", prompt="How long?", perplexity_fn=ppl)
    assert r.passed and r.got == "perplexity=4.5" and r.value == 4.5
    assert calls == [("How long?", "Five days.")]

    strict = parse_expectation({"perplexity": {"reference": "Five days.", "max": 3}})
    assert not evaluate(strict, "", prompt="How long?", perplexity_fn=ppl).passed
    negated = parse_expectation({"not_perplexity": {"reference": "Five days.", "max": 3}})
    assert evaluate(negated, "", prompt="How long?", perplexity_fn=ppl).passed


@pytest.mark.parametrize("key", ["perplexity", "not_perplexity"])
def test_perplexity_without_model_is_an_error_not_a_pass(key):
    exp = parse_expectation({key: {"reference": "Five days.", "max": 10}})
    r = evaluate(exp, "output")
    assert r.passed is False
    assert r.error is not None and "no perplexity function" in r.error
    assert "cannot evaluate" in r.message


@pytest.mark.parametrize("fn, fragment", [
    (lambda p, r: (_ for _ in ()).throw(RuntimeError("CUDA out of memory")), "CUDA out of memory"),
    (lambda p, r: math.nan, "NaN"),
])
def test_perplexity_function_failure_is_reported(fn, fragment):
    exp = parse_expectation({"perplexity": {"reference": "x", "max": 10}})
    r = evaluate(exp, "", perplexity_fn=fn)
    assert not r.passed and fragment in r.error


# ---------------------------------------------------------------- weights and tests

def test_weighted_score():
    exps = parse_expectations([
        {"contains": "refund"},                 # passes, weight 1
        {"contains": "days", "weight": 2},      # fails, weight 2
        {"max_chars": 100, "weight": 0.5},      # passes, weight 0.5
    ])
    outcome = evaluate_test(exps, "You get a refund.")
    assert outcome.passed is False
    assert outcome.score == pytest.approx(1.5 / 3.5)
    assert [r.passed for r in outcome.results] == [True, False, True]
    assert [r.weight for r in outcome.failures] == [2.0]
    assert not outcome.errored


def test_all_passing_test():
    exps = parse_expectations([{"icontains": "REFUND"}, {"not_contains": "sorry"}])
    outcome = evaluate_test(exps, "A refund, of course.")
    assert outcome.passed and outcome.score == 1.0 and outcome.failures == []


def test_errored_assertion_fails_the_test():
    exps = parse_expectations([{"contains": "a"},
                               {"perplexity": {"reference": "a", "max": 5}}])
    outcome = evaluate_test(exps, "a")
    assert not outcome.passed and outcome.errored and outcome.score == 0.5


def test_empty_test_is_rejected():
    with pytest.raises(ValueError, match="at least one"):
        evaluate_test([], "x")


@pytest.mark.parametrize("weight", [0, -1, True, "2", math.inf, None])
def test_bad_weight(weight):
    with pytest.raises(ValueError, match="weight must be a number > 0"):
        parse_expectation({"contains": "x", "weight": weight})


def test_weight_defaults_to_one():
    assert parse_expectation({"contains": "x"}).weight == 1.0
    assert parse_expectation({"contains": "x", "weight": 3}).weight == 3.0


# ---------------------------------------------------------------- parse errors

@pytest.mark.parametrize("item, fragment", [
    ("contains: refund", "must be a mapping"),
    (["contains", "x"], "must be a mapping"),
    ({}, "no assertion key"),
    ({"weight": 2}, "no assertion key"),
    ({"contains": "a", "regex": "b"}, "2 assertion keys (contains, regex)"),
    ({"contians": "a"}, "did you mean 'contains'?"),
    ({"not_contians": "a"}, "did you mean 'not_contains'?"),
    ({"not_not_contains": "a"}, "unknown assertion 'not_not_contains'"),
    ({"bleu": "a"}, "known assertions: equals, contains"),
    ({"contains": 42}, 'quote numbers'),
    ({"contains": True}, "got boolean"),
    ({"contains": ""}, "must not be an empty string"),
    ({"starts_with": ""}, "must not be an empty string"),
    ({"equals": None}, "expected a string"),
    ({"contains_any": "refund"}, "expected a list of strings"),
    ({"contains_all": []}, "the list is empty"),
    ({"contains_any": ["ok", 3]}, "contains_any[1]: expected a string"),
    ({"regex": "(unclosed"}, "invalid regular expression"),
    ({"is_json": False}, "not_is_json: true"),
    ({"is_json": "yes"}, "expected `true`"),
    ({"json_schema": "object"}, "expected a JSON Schema mapping"),
    ({"json_schema": {"type": "objekt"}}, "not a valid JSON Schema"),
    ({"max_chars": -1}, "whole number"),
    ({"max_chars": 2.5}, "whole number"),
    ({"max_chars": True}, "whole number"),
    ({"min_chars": -1}, "whole number"),
    ({"min_chars": "ten"}, "whole number"),
    ({"min_char": 10}, "did you mean 'min_chars'?"),
    ({"not_min_char": 10}, "did you mean 'not_min_chars'?"),
    ({"similar": "the cat"}, "expected a mapping"),
    ({"similar": {"reference": "x"}}, "missing field(s) threshold"),
    ({"similar": {"reference": "x", "threshold": 1.5}}, "between 0 and 1"),
    ({"similar": {"reference": "x", "threshold": 0.5, "metric": "bleu"}}, "rouge_l, token_f1"),
    ({"similar": {"reference": "x", "threshold": 0.5, "treshold": 1}}, "unknown field(s)"),
    ({"similar": {"reference": "", "threshold": 0.5}}, "similar.reference"),
    ({"perplexity": {"reference": "x", "max": 0.5}}, "never below 1"),
    ({"perplexity": {"reference": "x"}}, "missing field(s) max"),
])
def test_parse_errors_are_precise(item, fragment):
    with pytest.raises(ValueError) as info:
        parse_expectation(item)
    assert fragment in str(info.value)


def test_parse_expectations_prefixes_the_index():
    with pytest.raises(ValueError, match=r"^expect\[1\]: contains: must not be an empty string"):
        parse_expectations([{"contains": "ok"}, {"contains": ""}])
    with pytest.raises(ValueError, match="expect is empty"):
        parse_expectations([])
    with pytest.raises(ValueError, match="must be a list"):
        parse_expectations({"contains": "x"})


def test_parsed_arguments():
    assert parse_expectation({"contains_any": ["a", "b"]}).arg == ("a", "b")
    assert parse_expectation({"max_chars": 20.0}).arg == 20
    assert parse_expectation({"similar": {"reference": "r", "threshold": 1}}).arg == \
        SimilarArg(reference="r", threshold=1.0, metric="rouge_l")
    assert parse_expectation({"not_perplexity": {"reference": "r", "max": 2}}) == \
        Expectation(kind="perplexity", arg=PerplexityArg("r", 2.0), negated=True)


@pytest.mark.parametrize("item", [
    {"contains": "x"}, {"not_regex": "a+", "weight": 2.5}, {"contains_all": ["a", "b"]},
    {"json_schema": ANSWER_SCHEMA}, {"similar": {"reference": "r", "threshold": 0.5,
                                                 "metric": "token_f1"}},
    {"perplexity": {"reference": "r", "max": 9.0}}, {"not_is_json": True},
])
def test_to_dict_round_trips(item):
    exp = parse_expectation(item)
    assert parse_expectation(exp.to_dict()) == exp


def test_importing_assertions_does_not_load_jsonschema():
    code = ("import sys, llmspec.runtime.acceptance.assertions as a; "
            "a.parse_expectation({'contains': 'x'}); "
            "print('jsonschema' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_parse_json_output_rejects_text_around_the_fence():
    assert parse_json_output('```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}
    with pytest.raises(ValueError, match="Expecting value"):
        parse_json_output('Here it is:\n```json\n{"a": 1}\n```')
    with pytest.raises(ValueError, match="empty output"):
        parse_json_output("```json\n```")


# ---------------------------------------------------------------- JSON Schema of expect items

@pytest.mark.parametrize("item", [
    {"contains": "x"}, {"not_equals": ""}, {"regex": "a", "weight": 2},
    {"similar": {"reference": "r", "threshold": 0.3}}, {"is_json": True},
    {"perplexity": {"reference": "r", "max": 4}}, {"max_chars": 10},
])
def test_json_schema_accepts_what_the_parser_accepts(item):
    import jsonschema

    parse_expectation(item)
    jsonschema.validate(item, expectation_json_schema())


@pytest.mark.parametrize("item", [
    {}, {"weight": 1}, {"contains": "a", "regex": "b"}, {"contians": "a"}, {"contains": ""},
    {"is_json": False}, {"max_chars": -1}, {"similar": {"reference": "r"}},
    {"similar": {"reference": "r", "threshold": 2}}, {"perplexity": {"reference": "r", "max": 0}},
    {"contains": "x", "weight": 0},
])
def test_json_schema_rejects_what_the_parser_rejects(item):
    import jsonschema

    with pytest.raises(ValueError):
        parse_expectation(item)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(item, expectation_json_schema())


# ---------------------------------------------------------------- similarity

def test_rouge_l_known_values():
    # candidate: the cat sat on the mat / reference: the cat is on the mat
    # LCS = "the cat on the mat" (5); P = 5/6, R = 5/6, F = 5/6
    assert rouge_l("The cat sat on the mat.", "the cat is on the mat") == pytest.approx(5 / 6)
    # LCS("a b c d", "a c") = 2; P = 2/4, R = 2/2, F = 2 * .5 * 1 / 1.5 = 2/3
    assert rouge_l("a b c d", "a c") == pytest.approx(2 / 3)
    # order matters: LCS("y x", "x y") = 1, P = R = 1/2
    assert rouge_l("y x", "x y") == pytest.approx(0.5)
    assert rouge_l("Hello, World!", "hello world") == 1.0
    assert rouge_l("alpha", "beta") == 0.0


def test_token_f1_known_values():
    # normalised: "cat sat on mat" vs "cat is on mat"; overlap 3, P = R = 3/4
    assert token_f1("The cat sat on the mat.", "the cat is on the mat") == pytest.approx(0.75)
    # bag of words: order ignored
    assert token_f1("y x", "x y") == 1.0
    # repeats count once per occurrence in both: overlap 1, P = 1/3, R = 1, F = 0.5
    assert token_f1("yes yes yes", "yes") == pytest.approx(0.5)


@pytest.mark.parametrize("metric", [rouge_l, token_f1])
def test_similarity_empty_edge_cases(metric):
    assert metric("", "") == 1.0
    assert metric("", "something") == 0.0
    assert metric("something", "") == 0.0
    assert metric("!!! ...", "") == 1.0  # no tokens on either side


def test_token_f1_ignores_articles_only_answers():
    assert token_f1("the", "a") == 1.0  # both normalise to nothing


def test_squad_normalize():
    assert squad_normalize("The  Quick, brown fox!") == "quick brown fox"
    assert squad_normalize("An apple a day") == "apple day"


def test_lcs_length_classic():
    assert lcs_length("ABCBDAB", "BDCABA") == 4
    assert lcs_length([], ["a"]) == 0


def test_similarity_dispatch():
    assert similarity("token_f1", "x y", "y x") == 1.0
    with pytest.raises(ValueError, match="unknown similarity metric 'bleu'"):
        similarity("bleu", "a", "b")


@given(st.text(max_size=40), st.text(max_size=40))
def test_similarity_is_bounded_and_symmetric(a, b):
    for metric in (rouge_l, token_f1):
        score = metric(a, b)
        assert 0.0 <= score <= 1.0
        assert score == pytest.approx(metric(b, a))
    assert rouge_l(a, a) == 1.0 and token_f1(a, a) == 1.0

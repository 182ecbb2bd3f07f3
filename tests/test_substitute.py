"""`substitute` rewrites matches in place (groups, counted as modified); `replace_matching`
replaces whole values; regexes the cleaning engine cannot run fail at validate."""

from __future__ import annotations

import polars as pl
import pytest

from llmspec.compiler.cleaning import compile_cleaning
from llmspec.runtime.clean.run import run_cleaning
from llmspec.runtime.sources import SourceBatch
from llmspec.spec.load import check_spec
from llmspec.spec.models import QualitySpec

NONE = pl.DataFrame(schema={"_rule": pl.String, "_detail": pl.String, "_origin": pl.String, "_raw": pl.Binary})
DOCS = ["Intro <!-- draft --> text.", "```{note}\nKeep it.\n```", "No comment here.",
        "A <!-- one --> and <!-- two --> end."]


def _run(rules: list[dict], texts=DOCS):
    quality = QualitySpec.model_validate({"rules": rules})
    frame = pl.DataFrame({"text": texts, "_origin": [f"d#{i}" for i in range(len(texts))]})
    plan = compile_cleaning(quality, "docs", ["text"])
    return run_cleaning(SourceBatch("docs", frame, NONE, frame.height), plan)


def test_substitute_rewrites_only_the_matches_and_counts_modified_rows():
    result = _run([{"substitute": {"name": "html_comments", "column": "text", "pattern": r"\s*<!--.*?-->",
                                   "with": ""}}])
    assert result.kept["text"].to_list() == ["Intro text.", DOCS[1], DOCS[2], "A and end."]
    assert result.modified == {"html_comments": 2} and not any(result.rejected.values())


def test_replace_matching_still_replaces_the_whole_value():
    result = _run([{"replace_matching": {"column": "text", "patterns": [r"<!--"], "value": ""}}])
    assert result.kept["text"].to_list() == ["", DOCS[1], DOCS[2], ""]


def test_substitute_groups_named_and_numbered_and_literal_dollar():
    result = _run([{"substitute": {"column": "text", "pattern": r"```\{(?P<kind>\w+)\}\n(.*?)\n```",
                                   "with": r"\g<kind>: \2 ($1)", "ignore_case": True}}])
    assert result.kept["text"][1] == "note: Keep it. ($1)"
    assert result.modified == {"substitute": 1}


def test_substitute_group_that_does_not_exist_is_a_validate_error(write_spec, minimal_spec):
    spec = minimal_spec + "quality:\n  rules:\n    - substitute: {column: answer, pattern: '(a)', with: '\\2'}\n"
    (err,) = check_spec(write_spec(spec)).errors
    assert "refers to group 2, which the pattern does not have (1 group(s))" in err.message


@pytest.mark.parametrize("pattern,what", [("foo(?=bar)", "look-around"), ("(a)\\1", "back-reference"),
                                          ("(?<!x)y", "look-around")])
def test_regex_the_engine_cannot_run_is_a_validate_error(write_spec, minimal_spec, pattern, what):
    for rule in (f"reject_matching: {{column: answer, patterns: ['{pattern}']}}",
                 f"substitute: {{column: answer, pattern: '{pattern}'}}"):
        spec = minimal_spec + f"quality:\n  rules:\n    - {rule}\n"
        (err,) = check_spec(write_spec(spec)).errors
        assert err.code == "regex-not-portable" and what in err.message and err.pos.line == 15

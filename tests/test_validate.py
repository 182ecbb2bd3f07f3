"""Every error class of the spec language: its code, and the exact line and column it points at.

Each test writes a spec to tmp_path, breaks one thing in the minimal valid spec, and runs
`check_spec` on the file, as `llmspec validate` does. Expected positions are found by searching
the text for the culprit, so a test states *what* it points at, not a magic number.
"""

from __future__ import annotations

import time

import pytest

from llmspec.spec.errors import Diagnostic, SpecError
from llmspec.spec.load import check_spec, load_spec
from llmspec.spec.yamlload import ALIAS_BUDGET, MAX_DEPTH

from conftest import MINIMAL_SPEC, REPO_ROOT

TESTS = """\
acceptance:
  tests:
    - {name: refund, prompt: Can I return it?, expect: [{contains: 30 days}]}
"""


def where(text: str, needle: str, nth: int = 0, after: str | None = None) -> tuple[int, int]:
    """1-based (line, col) of the nth occurrence of needle in text (after the first `after`)."""
    offset = text.index(after) + len(after) - 1 if after else -1
    for _ in range(nth + 1):
        offset = text.index(needle, offset + 1)
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def errors_of(path) -> list[Diagnostic]:
    result = check_spec(path)
    for d in result.diagnostics:
        assert d.pos is not None and d.pos.line is not None and d.pos.col is not None, d.render()
    return result.errors


def one_error(path, code: str) -> Diagnostic:
    """The spec has exactly one error, with this code; return it."""
    errors = errors_of(path)
    assert [d.code for d in errors] == [code], "\n".join(d.render() for d in errors)
    return errors[0]


def at(diag: Diagnostic) -> tuple[int | None, int | None]:
    return diag.pos.line, diag.pos.col


def replaced(old: str, new: str, text: str = MINIMAL_SPEC) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# -- the baseline: what the error tests break --------------------------------------------------


def test_minimal_spec_is_valid(write_spec):
    result = check_spec(write_spec(MINIMAL_SPEC))
    assert result.diagnostics == []
    assert result.spec is not None and list(result.spec.sources) == ["qa"]


def test_example_spec_is_valid():
    result = check_spec(REPO_ROOT / "examples" / "support-bot" / "llmspec.yaml")
    assert result.errors == [], "\n".join(d.render() for d in result.errors)
    assert result.spec is not None


def test_load_spec_raises_spec_error_with_every_diagnostic(write_spec):
    text = MINIMAL_SPEC + "trainig: {}\nsplt: {}\n"
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(text))
    assert [d.code for d in info.value.diagnostics] == ["unknown-key", "unknown-key"]


# -- unknown keys ------------------------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_right_one(write_spec):
    text = MINIMAL_SPEC + "trainig:\n  epochs: 1\n"
    diag = one_error(write_spec(text), "unknown-key")
    assert at(diag) == where(text, "trainig")
    assert "'trainig'" in diag.message
    assert diag.hint == "did you mean 'training'?"


def test_unknown_nested_key_suggests_the_right_one(write_spec):
    text = MINIMAL_SPEC + "training:\n  epochs: 1\n  learnig_rate: 0.001\n"
    diag = one_error(write_spec(text), "unknown-key")
    assert at(diag) == where(text, "learnig_rate")
    assert "training" in diag.message
    assert diag.hint == "did you mean 'learning_rate'?"


def test_unknown_key_in_a_source_suggests_from_that_format(write_spec):
    text = replaced("    columns:", "    colums:")
    diag = one_error(write_spec(text), "unknown-key")
    assert at(diag) == where(text, "colums")
    assert diag.hint == "did you mean 'columns'?"


def test_unknown_key_in_a_rule(write_spec):
    text = MINIMAL_SPEC + "quality:\n  rules:\n    - dedupe: {columns: [question], methd: exact}\n"
    diag = one_error(write_spec(text), "unknown-key")
    assert at(diag) == where(text, "methd")
    assert diag.hint == "did you mean 'method'?"


def test_unknown_key_lists_only_the_keys_of_that_rule(write_spec):
    text = MINIMAL_SPEC + "quality:\n  rules:\n    - dedupe: {columns: [question], zzz: 1}\n"
    diag = one_error(write_spec(text), "unknown-key")
    assert at(diag) == where(text, "zzz")
    assert "method" in diag.hint and "patterns" not in diag.hint and "normalize" not in diag.hint


def test_unknown_key_lists_only_the_keys_of_that_source_format(write_spec):
    text = replaced("    columns:", "    zzz: 1\n    columns:")
    diag = one_error(write_spec(text), "unknown-key")
    assert at(diag) == where(text, "zzz")
    assert "path" in diag.hint and "query" not in diag.hint and "delimiter" not in diag.hint


# -- missing keys ------------------------------------------------------------------------------


def test_missing_top_level_keys_are_each_reported(write_spec):
    text = "llmspec: 1\nproject: demo\n"
    errors = errors_of(write_spec(text))
    assert sorted(d.code for d in errors) == ["missing-key"] * 3
    assert {d.message.rsplit("'", 2)[1] for d in errors} == {"base_model", "sources", "format"}
    assert {at(d) for d in errors} == {(1, 1)}
    assert all(d.hint and d.hint.startswith("add `") for d in errors)


def test_missing_nested_key_points_at_its_parent(write_spec):
    text = replaced("  style: chat\n", "")
    diag = one_error(write_spec(text), "missing-key")
    assert at(diag) == where(text, "format:\n")
    assert "'style'" in diag.message


def test_missing_source_format(write_spec):
    text = replaced("    format: jsonl\n", "")
    diag = one_error(write_spec(text), "missing-key")
    assert at(diag) == where(text, "qa:")
    assert "format" in diag.message and "jsonl" in diag.hint


# -- types, ranges, allowed values ---------------------------------------------------------------


def test_quoted_number_is_a_wrong_type_with_a_hint(write_spec):
    text = MINIMAL_SPEC + "training:\n  learning_rate: '0.001'\n"
    diag = one_error(write_spec(text), "wrong-type")
    assert at(diag) == where(text, "'0.001'")
    assert "training.learning_rate" in diag.message and "a number" in diag.message
    assert diag.hint == "numbers are written without quotes"


def test_quoted_boolean_gets_its_own_hint(write_spec):
    text = MINIMAL_SPEC + "quality:\n  keep_rejects: 'yes'\n"
    diag = one_error(write_spec(text), "wrong-type")
    assert at(diag) == where(text, "'yes'")
    assert "true or false" in diag.hint


def test_mapping_where_a_list_belongs(write_spec):
    text = MINIMAL_SPEC + "quality:\n  rules: {dedupe: {columns: [question]}}\n"
    diag = one_error(write_spec(text), "wrong-type")
    assert at(diag) == where(text, "{dedupe")
    assert "a list" in diag.message


@pytest.mark.parametrize("section,value,needle", [
    ("training:\n  learning_rate: 0\n", "0", "0\n"),
    ("training:\n  learning_rate: -1.0e-4\n", "-0.0001", "-1.0e-4"),
    ("training:\n  epochs: 0\n", "0", "0\n"),
    ("quality:\n  rules:\n    - dedupe: {columns: [question], method: minhash, threshold: 1.5}\n", "1.5", "1.5"),
    ("split:\n  eval_fraction: 0.9\n", "0.9", "0.9"),
    ("training:\n  lora: {dropout: 1.0}\n", "1.0", "1.0"),
])
def test_out_of_range(write_spec, section, value, needle):
    text = MINIMAL_SPEC + section
    diag = one_error(write_spec(text), "out-of-range")
    assert at(diag) == where(text, needle, after=MINIMAL_SPEC)
    assert value in diag.message
    assert diag.hint.startswith("valid range: ")


def test_out_of_range_gate(write_spec):
    text = MINIMAL_SPEC + TESTS + "  gates:\n    pass_rate: '>= 1.5'\n"
    diag = one_error(write_spec(text), "out-of-range")
    assert at(diag) == where(text, "'>= 1.5'")
    assert "[0.0, 1.0]" in diag.message


def test_invalid_literal_lists_allowed_values(write_spec):
    text = MINIMAL_SPEC + "training:\n  method: lorra\n"
    diag = one_error(write_spec(text), "invalid-value")
    assert at(diag) == where(text, "lorra")
    assert "'lorra'" in diag.message
    assert "did you mean 'lora'?" in diag.hint and "lora, qlora, full" in diag.hint


def test_invalid_literal_that_may_also_be_a_mapping(write_spec):
    text = MINIMAL_SPEC + "training:\n  hardware: gpu\n"
    diag = one_error(write_spec(text), "invalid-value")
    assert at(diag) == where(text, "gpu")
    assert "auto, cpu, cuda" in diag.hint and "mapping" in diag.hint


@pytest.mark.parametrize("version,hint", [("2", "allowed values: 1"), ("true", "allowed values: 1"),
                                          ("'1'", "numbers are written without quotes; allowed values: 1")])
def test_wrong_language_version(write_spec, version, hint):
    text = replaced("llmspec: 1", f"llmspec: {version}")
    diag = one_error(write_spec(text), "invalid-value")
    assert at(diag) == where(text, version)
    assert diag.hint == hint


def test_project_name_form(write_spec):
    text = replaced("project: demo", "project: My Project")
    diag = one_error(write_spec(text), "invalid-value")
    assert at(diag) == where(text, "My Project")


def test_unknown_source_format_suggests_one(write_spec):
    text = replaced("format: jsonl", "format: jsonlines")
    diag = one_error(write_spec(text), "invalid-value")
    assert at(diag) == where(text, "jsonlines")
    assert "'jsonlines'" in diag.message
    assert diag.hint == "did you mean 'jsonl'?"


def test_source_format_that_is_not_a_name(write_spec):
    text = replaced("format: jsonl", "format: [jsonl]")
    diag = one_error(write_spec(text), "invalid-value")
    assert at(diag) == where(text, "[jsonl]")
    assert "a list" in diag.message and "jsonl, json, csv" in diag.hint


def test_empty_sources(write_spec):
    text = MINIMAL_SPEC.replace("sources:\n  qa:\n    path: data/qa.jsonl\n    format: jsonl\n"
                                "    columns: {question: str, answer: str}\n", "sources: {}\n")
    diag = one_error(write_spec(text), "out-of-range")
    assert at(diag) == where(text, "{}")
    assert diag.message == "sources must not be empty"


# -- quality rules -----------------------------------------------------------------------------


def test_unknown_rule_name_suggests_one(write_spec):
    text = MINIMAL_SPEC + "quality:\n  rules:\n    - drop_corrupt: {}\n    - dedup: {columns: [question]}\n"
    diag = one_error(write_spec(text), "unknown-rule")
    assert at(diag) == where(text, "dedup:")
    assert "quality.rules[1]" in diag.message
    assert diag.hint == "did you mean 'dedupe'?"


def test_rule_that_is_not_a_mapping(write_spec):
    text = MINIMAL_SPEC + "quality:\n  rules:\n    - dedupe\n"
    diag = one_error(write_spec(text), "unknown-rule")
    assert at(diag) == where(text, "dedupe")


def test_bad_regex_names_the_pattern_and_why(write_spec):
    text = MINIMAL_SPEC + ("quality:\n  rules:\n    - reject_matching:\n        column: answer\n"
                           "        patterns: ['^ok$', 'see (above']\n")
    diag = one_error(write_spec(text), "bad-regex")
    assert at(diag) == where(text, "'see (above'")
    assert "'see (above'" in diag.message
    assert "missing ), unterminated subpattern" in diag.message
    assert "{" not in diag.message  # the message template is filled in


def test_rule_on_an_undeclared_column(write_spec):
    text = MINIMAL_SPEC + "quality:\n  rules:\n    - require: {columns: [anwser]}\n"
    diag = one_error(write_spec(text), "unknown-column")
    assert at(diag) == where(text, "anwser")
    assert diag.hint == "did you mean 'answer'?"


def test_rule_names_an_undeclared_source(write_spec):
    text = MINIMAL_SPEC + "quality:\n  rules:\n    - require: {sources: [qaa], columns: [answer]}\n"
    errors = errors_of(write_spec(text))
    assert [d.code for d in errors] == ["unknown-source"]
    assert at(errors[0]) == where(text, "qaa")
    assert errors[0].hint == "did you mean 'qa'?"


def test_conflicting_rule_arguments(write_spec):
    text = MINIMAL_SPEC + "quality:\n  rules:\n    - require: {column: answer, columns: [question]}\n"
    diag = one_error(write_spec(text), "conflict")
    assert at(diag) == where(text, "column:")


def test_minhash_layout_larger_than_the_permutations(write_spec):
    text = MINIMAL_SPEC + ("quality:\n  rules:\n    - dedupe: {column: answer, method: minhash, permutations: 64,"
                           " bands: 9, rows_per_band: 8}\n")
    diag = one_error(write_spec(text), "conflict")
    assert "72" in diag.message and "64 permutations" in diag.message
    assert diag.pos.line == where(text, "bands:")[0]


# -- gates -------------------------------------------------------------------------------------


@pytest.mark.parametrize("gate,words", [("'=> 0.9'", "did you mean '>='"), ("'about 0.9'", "'>= 0.9'"),
                                        ("'>= 0.9 and <= 1'", "'>= 0.9'")])
def test_bad_gate_expression(write_spec, gate, words):
    text = MINIMAL_SPEC + TESTS + f"  gates:\n    pass_rate: {gate}\n"
    diag = one_error(write_spec(text), "bad-gate")
    assert at(diag) == where(text, gate)
    assert words in diag.message


def test_eval_loss_gate_needs_an_eval_split(write_spec):
    text = MINIMAL_SPEC + "split: {eval_fraction: 0}\n" + TESTS + "  gates:\n    eval_loss: '<= 2.0'\n"
    diag = one_error(write_spec(text), "conflict")
    assert at(diag) == where(text, "'<= 2.0'")
    assert "eval_fraction" in diag.message


def test_beats_baseline_needs_a_baseline(write_spec):
    text = MINIMAL_SPEC + TESTS + "  baseline: none\n  gates:\n    beats_baseline: true\n"
    diag = one_error(write_spec(text), "conflict")
    assert at(diag) == where(text, "true")
    assert "baseline" in diag.message


def test_duplicate_test_names(write_spec):
    text = MINIMAL_SPEC + TESTS + "    - {name: refund, prompt: Refund?, expect: [{contains: 30 days}]}\n"
    diag = one_error(write_spec(text), "duplicate-test")
    assert at(diag) == where(text, "refund", nth=1)
    assert "acceptance.tests[0]" in diag.hint


def test_bad_assertion(write_spec):
    text = MINIMAL_SPEC + "acceptance:\n  tests:\n    - {name: a, prompt: p, expect: [{contians: x}]}\n"
    diag = one_error(write_spec(text), "bad-assertion")
    assert at(diag) == where(text, "[{contians")


# -- format.map --------------------------------------------------------------------------------


def test_format_map_names_an_unknown_source(write_spec):
    text = replaced("    qa: {user", "    qa: {user: question, assistant: answer}\n    qaa: {user")
    diag = one_error(write_spec(text), "unknown-source")
    assert at(diag) == where(text, "qaa")
    assert diag.hint == "did you mean 'qa'?"


def test_unmapped_source(write_spec):
    text = replaced("format:\n", "  faq:\n    path: faq.jsonl\n    format: jsonl\nformat:\n")
    diag = one_error(write_spec(text), "unmapped-source")
    assert at(diag) == where(text, "faq:")
    assert "'faq'" in diag.message


def test_field_that_does_not_fit_the_style(write_spec):
    text = replaced("assistant: answer}", "assistant: answer, instruction: question}")
    diag = one_error(write_spec(text), "style-mismatch")
    assert at(diag) == where(text, "instruction")
    assert "chat" in diag.message and "user" in diag.hint


def test_field_misspelt_for_the_style(write_spec):
    text = replaced("assistant: answer}", "asistant: answer}")
    codes = {d.code: d for d in errors_of(write_spec(text))}
    assert set(codes) == {"style-mismatch", "missing-key"}
    assert at(codes["style-mismatch"]) == where(text, "asistant")
    assert codes["style-mismatch"].hint == "did you mean 'assistant'?"


def test_missing_style_field(write_spec):
    text = replaced(", assistant: answer}", "}")
    diag = one_error(write_spec(text), "missing-key")
    assert at(diag) == where(text, "qa: {user")
    assert "'assistant'" in diag.message and "chat" in diag.message


def test_input_output_needs_segments_as_a_list(write_spec):
    text = replaced("style: chat", "style: input_output")
    text = replaced("qa: {user: question, assistant: answer}", "qa: {segments: question}", text)
    diag = one_error(write_spec(text), "wrong-type")
    assert at(diag) == where(text, "question}")


# -- templates ---------------------------------------------------------------------------------


def test_template_syntax_error(write_spec):
    text = replaced("user: question", "user: '{{ question '")
    diag = one_error(write_spec(text), "bad-template")
    assert at(diag) == where(text, "'{{ question '")
    assert "does not parse" in diag.message


@pytest.mark.parametrize("template,name", [
    ("'{{ question.__class__ }}'", "__class__"),
    ("'{{ question._private }}'", "_private"),
    ("\"{{ question['__globals__'] }}\"", "__globals__"),
    ("\"{{ question | attr('__class__') }}\"", "__class__"),
    ("'{% for c in question.__class__.__mro__ %}{{ c }}{% endfor %}'", "__class__"),
])
def test_unsafe_template(write_spec, template, name):
    text = replaced("user: question", f"user: {template}")
    diag = one_error(write_spec(text), "unsafe-template")
    assert at(diag) == where(text, template)
    assert f"'{name}'" in diag.message


def test_unsafe_template_in_a_block_scalar_names_its_line(write_spec):
    text = replaced("    qa: {user: question, assistant: answer}\n",
                    "    qa:\n      assistant: answer\n      user: |\n        Q: {{ question }}\n"
                    "        {{ question.__init__ }}\n")
    diag = one_error(write_spec(text), "unsafe-template")
    assert at(diag) == where(text, "{{ question.__init__ }}")  # the template's own line, not the `|`
    assert "'__init__'" in diag.message


def test_template_syntax_error_after_blank_lines_in_a_block_scalar_points_at_its_line(write_spec):
    text = replaced("    qa: {user: question, assistant: answer}\n",
                    "    qa:\n      assistant: answer\n      user: |\n\n        Q: {{ question }}\n\n"
                    "        {% if question %}\n        {{ question }\n")
    diag = one_error(write_spec(text), "bad-template")
    line, col = where(text, "{{ question }\n")
    assert at(diag)[0] in (line - 1, line)  # Jinja reports the unclosed block or the broken tag
    assert at(diag)[1] == col


def test_template_error_in_a_folded_block_keeps_the_line_in_the_message(write_spec):
    text = replaced("    qa: {user: question, assistant: answer}\n",
                    "    qa:\n      assistant: answer\n      user: >\n        Q: {{ question }}\n\n"
                    "        {{ question.__init__ }}\n")
    diag = one_error(write_spec(text), "unsafe-template")
    assert at(diag) == where(text, ">")  # folded lines do not map one to one
    assert "line 2 of the template" in diag.message  # the blank line folded away


def test_template_uses_an_undeclared_column(write_spec):
    text = replaced("user: question", "user: 'Q: {{ questoin }}'")
    diag = one_error(write_spec(text), "unknown-column")
    assert at(diag) == where(text, "'Q: {{ questoin }}'")
    assert "'questoin'" in diag.message and diag.hint == "did you mean 'question'?"


def test_bare_column_reference_to_an_undeclared_column(write_spec):
    text = replaced("assistant: answer", "assistant: anwser")
    diag = one_error(write_spec(text), "unknown-column")
    assert at(diag) == where(text, "anwser")


def test_template_may_use_reserved_tokens_and_jinja_globals(write_spec):
    text = replaced("style: chat", "style: input_output")
    text = replaced("qa: {user: question, assistant: answer}",
                    "qa: {segments: [{text: '{{ bos_token }}{% for i in range(1) %}{{ question }}{% endfor %}', "
                    "train: false}, {text: '{{ answer }}{{ eos_token }}', train: true}]}", text)
    assert errors_of(write_spec(text)) == []


def test_template_on_a_source_without_a_contract_is_not_checked_against_columns(write_spec):
    text = replaced("    columns: {question: str, answer: str}\n", "")
    text = replaced("user: question", "user: '{{ anything }}'", text)
    assert errors_of(write_spec(text)) == []


# -- paths and secrets -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/etc/passwd", "~/data.jsonl", "C:\\data\\qa.jsonl"])
def test_absolute_path(write_spec, path):
    text = replaced("path: data/qa.jsonl", f"path: '{path}'")
    diag = one_error(write_spec(text), "absolute-path")
    assert at(diag) == where(text, f"'{path}'")


@pytest.mark.parametrize("path", ["../qa.jsonl", "data/../../qa.jsonl", "./data/../../../etc/passwd"])
def test_dotdot_escaping_the_spec_folder(write_spec, path):
    text = replaced("path: data/qa.jsonl", f"path: {path}")
    diag = one_error(write_spec(text), "path-escape")
    assert at(diag) == where(text, path)


def test_dotdot_that_stays_inside_is_fine(write_spec):
    text = replaced("path: data/qa.jsonl", "path: data/../qa.jsonl")
    assert errors_of(write_spec(text)) == []


def test_tests_from_path_is_checked_too(write_spec):
    text = MINIMAL_SPEC + "acceptance:\n  tests_from: ../tests.jsonl\n"
    diag = one_error(write_spec(text), "path-escape")
    assert at(diag) == where(text, "../tests.jsonl")


POSTGRES = "    url: {url}\n    format: postgres\n    query: SELECT question, answer FROM faq\n"


def test_inline_url_password(write_spec):
    text = replaced("    path: data/qa.jsonl\n    format: jsonl\n",
                    POSTGRES.format(url="postgres://bob:hunter2@db.example/crm"))
    diag = one_error(write_spec(text), "inline-secret")
    assert at(diag) == where(text, "postgres://")
    assert "hunter2" not in diag.message + (diag.hint or "")


def test_url_password_anywhere_in_the_spec(write_spec):
    text = replaced("project: demo\n", "project: demo\ndescription: mirror at https://bob:hunter2@host/x\n")
    diag = one_error(write_spec(text), "inline-secret")
    assert at(diag) == where(text, "mirror")
    assert "hunter2" not in diag.message + (diag.hint or "")


def test_database_url_not_given_as_env_reference(write_spec):
    text = replaced("    path: data/qa.jsonl\n    format: jsonl\n", POSTGRES.format(url="postgres://db.example/crm"))
    diag = one_error(write_spec(text), "inline-secret")
    assert at(diag) == where(text, "postgres://")
    assert "${env:" in diag.message


def test_database_url_as_env_reference_is_fine(write_spec):
    text = replaced("    path: data/qa.jsonl\n    format: jsonl\n", POSTGRES.format(url="${env:CRM_URL}"))
    assert errors_of(write_spec(text)) == []


@pytest.mark.parametrize("url", ["postgres://${env:DB_USER}@db.example/crm",
                                 "postgres://${env:DB_USER}:${env:DB_PASSWORD}@db.example/crm",
                                 "${env:DB_HOST}/crm"])
def test_database_url_with_env_references_spliced_in(write_spec, url):
    # the reader resolves one whole `${env:NAME}`; anything else would fail at run time
    text = replaced("    path: data/qa.jsonl\n    format: jsonl\n", POSTGRES.format(url=url))
    diag = one_error(write_spec(text), "inline-secret")
    assert at(diag) == where(text, url)
    assert "must be given as `${env:NAME}`" in diag.message


def test_url_password_without_user(write_spec):
    text = replaced("    path: data/qa.jsonl\n    format: jsonl\n", POSTGRES.format(url="postgres://:hunter2@db/crm"))
    diag = one_error(write_spec(text), "inline-secret")
    assert "inline password" in diag.message


def test_env_reference_outside_a_url(write_spec):
    text = replaced("project: demo\n", "project: demo\ndescription: ${env:HOME}\n")
    diag = one_error(write_spec(text), "env-not-allowed")
    assert at(diag) == where(text, "${env:HOME}")


# -- base model --------------------------------------------------------------------------------


def test_unknown_builtin_model(write_spec):
    text = replaced("builtin:tiny", "builtin:tiny2")
    diag = one_error(write_spec(text), "unknown-builtin")
    assert at(diag) == where(text, "builtin:tiny2")
    assert "builtin:tiny" in diag.hint


def test_unpinned_hub_model_is_a_warning(write_spec):
    text = replaced("{id: builtin:tiny}", "{id: org/model}")
    result = check_spec(write_spec(text))
    assert result.errors == []
    assert [(d.code, at(d)) for d in result.warnings] == [("unpinned-model", where(text, "org/model"))]


def test_qlora_on_cpu(write_spec):
    text = MINIMAL_SPEC + "training:\n  method: qlora\n  hardware: cpu\n"
    diag = one_error(write_spec(text), "conflict")
    assert at(diag) == where(text, "qlora")
    assert "qlora" in diag.message and "cpu" in diag.message


# -- extends -----------------------------------------------------------------------------------


def test_extends_unknown_recipe_suggests_one(write_spec):
    text = MINIMAL_SPEC + "extends: [recipe:lora-smal]\n"
    diag = one_error(write_spec(text), "unknown-recipe")
    assert at(diag) == where(text, "recipe:lora-smal")
    assert diag.hint == "did you mean 'lora-small'?"


def test_extends_a_single_string(write_spec):
    text = MINIMAL_SPEC + "extends: recipe:lora-small\n"
    result = check_spec(write_spec(text))
    assert result.errors == [], "\n".join(d.render() for d in result.errors)
    assert result.spec.training.lora.r == 16


def test_extends_wrong_type(write_spec):
    text = MINIMAL_SPEC + "extends: {recipe: lora-small}\n"
    diag = one_error(write_spec(text), "wrong-type")
    assert at(diag) == where(text, "{recipe")


def test_extends_missing_file(write_spec):
    text = MINIMAL_SPEC + "extends: [shared/base.yaml]\n"
    diag = one_error(write_spec(text), "file-not-found")
    assert at(diag) == where(text, "shared/base.yaml")


def test_extends_cycle_between_two_files(write_spec):
    text = MINIMAL_SPEC + "extends: [base.yaml]\n"
    base = "# shared settings\nextends: [./llmspec.yaml]\ntraining: {epochs: 2}\n"
    path = write_spec(text, files={"base.yaml": base})
    diag = one_error(path, "extends-cycle")
    assert diag.pos.path.endswith("base.yaml")
    assert at(diag) == where(base, "./llmspec.yaml")
    assert "llmspec.yaml" in diag.message and "base.yaml" in diag.message


def test_extends_itself(write_spec):
    text = MINIMAL_SPEC + "extends: [llmspec.yaml]\n"
    diag = one_error(write_spec(text), "extends-cycle")
    assert at(diag) == where(text, "llmspec.yaml]")


def test_extends_chain_too_deep(write_spec):
    files = {f"b{i}.yaml": f"extends: [b{i + 1}.yaml]\n" for i in range(12)}
    files["b12.yaml"] = "training: {epochs: 1}\n"
    diag = one_error(write_spec(MINIMAL_SPEC + "extends: [b0.yaml]\n", files=files), "extends-cycle")
    assert "deeper than" in diag.message and "b0.yaml -> b1.yaml" in diag.message


def test_error_in_a_value_from_a_base_file_names_that_file_and_line(write_spec):
    text = MINIMAL_SPEC + "extends: [base.yaml]\n"
    base = "# shared settings\ntraining:\n  epochs: 2\n  learning_rate: 0\n"
    diag = one_error(write_spec(text, files={"base.yaml": base}), "out-of-range")
    assert diag.pos.path.endswith("base.yaml")
    assert at(diag) == where(base, "0\n")


def test_unknown_key_in_a_base_file_names_that_file(write_spec):
    text = MINIMAL_SPEC + "extends: [base.yaml]\n"
    base = "\ntrainig:\n  epochs: 2\n"
    diag = one_error(write_spec(text, files={"base.yaml": base}), "unknown-key")
    assert diag.pos.path.endswith("base.yaml")
    assert at(diag) == where(base, "trainig")


def test_conflict_between_recipe_and_spec_names_the_recipe(write_spec):
    # the recipe says qlora; this file says cpu: the error shows where the qlora came from
    text = MINIMAL_SPEC + "extends: [recipe:qlora-7b-1gpu]\ntraining:\n  hardware: cpu\n"
    diag = one_error(write_spec(text), "conflict")
    assert diag.pos.path == "recipes/qlora-7b-1gpu.yaml"
    recipe = (REPO_ROOT / "recipes" / "qlora-7b-1gpu.yaml").read_text()
    assert at(diag) == where(recipe, "qlora\n")


def test_spec_value_overrides_recipe_value(write_spec):
    text = MINIMAL_SPEC + "extends: [recipe:lora-small]\ntraining:\n  learning_rate: 0\n"
    diag = one_error(write_spec(text), "out-of-range")
    assert diag.pos.path.endswith("llmspec.yaml")
    assert at(diag) == where(text, "0\n")


def test_error_in_own_rule_after_recipe_rules_counts_rules_as_written(write_spec):
    text = MINIMAL_SPEC + ("extends: [recipe:instruction-hygiene]\n"
                           "quality:\n  rules:\n    - reject_matching: {column: answer, patterns: ['(']}\n")
    diag = one_error(write_spec(text), "bad-regex")
    assert diag.pos.path.endswith("llmspec.yaml")
    assert at(diag) == where(text, "'('")
    assert diag.message.startswith("quality.rules[0].reject_matching.patterns:")


def test_recipes_append_rules(write_spec):
    text = MINIMAL_SPEC + ("extends: [recipe:instruction-hygiene]\n"
                           "quality:\n  rules:\n    - require: {columns: [answer]}\n")
    result = check_spec(write_spec(text))
    assert result.errors == []
    kinds = [type(r).__name__ for r in result.spec.quality.rules]
    assert len(kinds) == 8 and kinds[-1] == "RequireRule"  # the recipe's seven, then this file's


# -- the YAML door, seen through check_spec ------------------------------------------------------


@pytest.mark.parametrize("text,code,needle", [
    ("llmspec: 1\nproject: a\nproject: b\n", "yaml-duplicate-key", "project: b"),
    ("llmspec: 1\nproject: !!python/object:os.system ls\n", "yaml-tag", "!!python"),
    ("llmspec: 1\nproject: !custom x\n", "yaml-tag", "!custom"),
    ("", "yaml-empty", None),
    ("# nothing but a comment\n", "yaml-empty", None),
    ("- llmspec: 1\n", "yaml-not-mapping", "-"),
    ("llmspec: 1\nproject:\n\tdemo\n", "yaml-tab-indent", "\tdemo"),
    ("llmspec: 1\nproject: [a\n", "yaml-syntax", None),
    ("llmspec: 1\n---\nproject: demo\n", "yaml-multi-document", "---"),
    ("llmspec: 1\n? [a, b]\n: c\n", "yaml-key-type", "[a, b]"),
    ("llmspec: 1\n!!int 3: x\n", "yaml-key-type", "!!int"),
    ("llmspec: 1\ntraining:\n  <<: 3\n", "yaml-merge", "3"),
    ("llmspec: 1\nproject: *nowhere\n", "yaml-syntax", "*nowhere"),
])
def test_yaml_refusals(write_spec, text, code, needle):
    diag = one_error(write_spec(text), code)
    if needle is not None:
        assert at(diag) == where(text, needle)


def test_binary_file(write_spec):
    diag = one_error(write_spec(b"llmspec: 1\n\x00\x01\x02\xff\xfe"), "yaml-binary")
    assert at(diag) == (2, 1)


def test_not_utf8(write_spec):
    diag = one_error(write_spec(b"llmspec: 1\nproject: caf\xe9\n"), "yaml-encoding")
    assert at(diag) == (2, 13)


def test_billion_laughs_fails_fast(write_spec):
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    text = "\n".join(lines) + "\n"
    start = time.perf_counter()
    diag = one_error(write_spec(text), "yaml-alias-budget")
    assert time.perf_counter() - start < 1.0
    assert diag.pos.line <= 10 and str(ALIAS_BUDGET) in diag.message


def test_deep_nesting_is_refused_without_recursion_error(write_spec):
    text = "llmspec: 1\nproject: " + "[" * 5000 + "]" * 5000 + "\n"
    diag = one_error(write_spec(text), "yaml-too-deep")
    assert at(diag) == (2, len("project: ") + MAX_DEPTH)


def test_missing_file(tmp_path):
    result = check_spec(tmp_path / "nope.yaml")
    assert [d.code for d in result.errors] == ["file-not-found"]


def test_directory(tmp_path):
    result = check_spec(tmp_path)
    assert [d.code for d in result.errors] == ["file-not-found"]
    assert "directory" in result.errors[0].message


# -- several errors, one run -------------------------------------------------------------------


def test_all_shape_errors_are_reported_in_one_run(write_spec):
    text = replaced("format: jsonl", "format: jsonlines") + (
        "trainig: {}\n"
        "training:\n  learning_rate: '0.1'\n  epochs: 0\n  method: lorra\n"
        "quality:\n  rules:\n    - dedup: {}\n    - reject_matching: {column: answer, patterns: ['(']}\n"
    )
    errors = errors_of(write_spec(text))
    assert sorted(d.code for d in errors) == sorted([
        "invalid-value", "unknown-key", "wrong-type", "out-of-range", "invalid-value", "unknown-rule",
        "bad-regex"])
    lines = [d.pos.line for d in errors]
    assert lines == sorted(lines)


def test_all_cross_field_errors_are_reported_in_one_run(write_spec):
    text = replaced("path: data/qa.jsonl", "path: ../qa.jsonl")
    text = replaced("user: question", "user: '{{ questoin }}'", text)
    text = replaced("builtin:tiny", "builtin:huge", text)
    text += "    faq: {user: q, assistant: a}\n" + TESTS
    text += "    - {name: refund, prompt: Refund?, expect: [{contains: 30 days}]}\n"
    text += "  baseline: none\n  gates: {beats_baseline: true}\n"
    errors = errors_of(write_spec(text))
    assert sorted(d.code for d in errors) == sorted([
        "path-escape", "unknown-column", "unknown-builtin", "unknown-source", "duplicate-test", "conflict"])
    assert [at(d) for d in errors] == sorted(at(d) for d in errors)  # top to bottom, as the file reads


def test_shape_errors_in_one_section_do_not_hide_cross_field_errors_in_others(write_spec):
    text = replaced("user: question", "user: '{{ questoin }}'") + "training:\n  learning_rate: 0\n"
    text += "trainig: {}\n"
    errors = errors_of(write_spec(text))
    assert [d.code for d in errors] == ["unknown-column", "out-of-range", "unknown-key"]
    assert at(next(d for d in errors if d.code == "unknown-column")) == where(text, "'{{ questoin }}'")

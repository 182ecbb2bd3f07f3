"""Quality rules: compilation to a plan, each rule's semantics, order, counts, gates."""

from __future__ import annotations

import json

import polars as pl
import pytest

from llmspec.compiler.cleaning import CleaningPlan, compile_cleaning, rule_reasons, rust_regex, RegexNotPortable
from llmspec.runtime.clean.explain import explain_plan
from llmspec.runtime.clean.run import AccountingError, check_gates, run_cleaning
from llmspec.runtime.sources import SourceBatch
from llmspec.spec.errors import DataError, SpecError
from llmspec.spec.models import RULE_ARGS, QualitySpec

TURNS = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))


def batch(data: dict, *, rejected: pl.DataFrame | None = None, schema=None, name: str = "src") -> SourceBatch:
    rows = pl.DataFrame(data, schema=schema)
    rows = rows.with_columns(pl.format("f:{}", pl.int_range(pl.len()) + 1).alias("_origin"))
    if rejected is None:
        rejected = pl.DataFrame(schema={"_rule": pl.String, "_detail": pl.String, "_origin": pl.String,
                                        "_raw": pl.Binary})
    return SourceBatch(name=name, rows=rows, rejected=rejected, rows_in=rows.height + rejected.height, files=["f"])


def quality(rules: list, **extra) -> QualitySpec:
    return QualitySpec.model_validate({"rules": rules, **extra})


def clean(rules: list, data: dict, **kw):
    b = kw.pop("b", None) or batch(data, schema=kw.pop("schema", None))
    plan = compile_cleaning(quality(rules), b.name, dict(b.rows.schema))
    return run_cleaning(b, plan, **kw)


def rejects_of(result, rule: str) -> pl.DataFrame:
    return result.rejects.filter(pl.col("_rule") == rule)


# ----------------------------------------------------------------------------- plan


def test_reasons_name_kind_and_numbered_repeats():
    q = quality([{"require": {"columns": ["a"]}}, {"require": {"columns": ["b"], "name": "need_b"}},
                 {"dedupe": {}}, {"dedupe": {"method": "fingerprint"}}, {"normalize": {}}])
    assert rule_reasons(q.rules) == ["require", "need_b", "dedupe#1", "dedupe#2", "normalize"]


def test_rules_filtered_by_source_and_reasons_stable_across_sources():
    q = quality([{"dedupe": {"sources": ["tickets"]}}, {"dedupe": {"method": "fingerprint"}}])
    faq = compile_cleaning(q, "faq", ["a"])
    tickets = compile_cleaning(q, "tickets", ["a"])
    assert [s.reason for s in faq.steps] == ["dedupe#2"]
    assert [s.reason for s in tickets.steps] == ["dedupe#1", "dedupe#2"]


def test_missing_column_is_a_spec_error_naming_rule_index_and_column():
    q = quality([{"normalize": {}}, {"require": {"columns": ["question", "answr"]}}])
    with pytest.raises(SpecError) as exc:
        compile_cleaning(q, "faq", ["question", "answer"])
    d = exc.value.first
    assert d.code == "unknown-column"
    assert "quality.rules[1]" in d.message and "'answr'" in d.message and "'faq'" in d.message
    assert "answer" in d.hint


def test_skip_missing_columns_skips_and_records_it():
    q = quality([{"require": {"columns": ["output"], "skip_missing_columns": True}}, {"normalize": {}}])
    plan = compile_cleaning(q, "s", ["text"])
    assert [s.kind for s in plan.steps] == ["normalize"]
    assert plan.skipped == [{"index": 0, "reason": "require", "kind": "require", "missing": ["output"]}]
    assert "skip_missing_columns" in explain_plan(plan)


def test_plan_is_json_and_round_trips():
    q = quality([{"reject_matching": {"column": "a", "patterns": [r"foo\Z"], "ignore_case": True}},
                 {"dedupe": {"method": "minhash", "columns": ["a"]}}, {"redact_pii": {"kinds": ["email"]}}])
    plan = compile_cleaning(q, "s", {"a": "str", "n": "int"})
    data = json.loads(json.dumps(plan.to_dict()))
    assert CleaningPlan.from_dict(data) == plan
    step = data["steps"][0]
    assert step["args"]["rust_patterns"] == [r"(?i)foo\z"]
    assert data["steps"][1]["args"]["bands"] * data["steps"][1]["args"]["rows_per_band"] == 128
    assert data["steps"][2]["columns"] == ["a"]  # text columns only: n is an int
    text = explain_plan(plan)
    assert "1. reject_matching" in text and "str.contains" in text and "FILTER" in text
    assert "3. redact_pii" in text


def test_minhash_layout_from_the_spec_or_chosen():
    def layout(**args):
        plan = compile_cleaning(quality([{"dedupe": {"method": "minhash", "columns": ["a"], **args}}]), "s", {"a": "str"})
        return plan.steps[0].args["bands"], plan.steps[0].args["rows_per_band"]

    from llmspec.compiler.dedupe_layout import band_layout

    assert layout(threshold=0.9) == band_layout(0.9, 128)
    assert layout(threshold=0.9, bands=9, rows_per_band=12) == (9, 12)  # 108 of the 128 permutations
    assert layout(bands=32) == (32, 4) and layout(rows_per_band=16) == (8, 16)
    exact = compile_cleaning(quality([{"dedupe": {"columns": ["a"]}}]), "s", {"a": "str"}).steps[0].args
    assert "bands" not in exact and "rows_per_band" not in exact


def test_language_rule_is_refused_with_the_measurement():
    q = quality([{"language": {"column": "a", "allowed": ["en"]}}])
    with pytest.raises(SpecError) as exc:
        compile_cleaning(q, "s", ["a"])
    assert exc.value.first.code == "unsupported-rule"
    assert "ms per row" in exc.value.first.message and "langdetect" in exc.value.first.message
    # scoped to another source: nothing to refuse
    q = quality([{"language": {"column": "a", "allowed": ["en"], "sources": ["other"]}}])
    assert compile_cleaning(q, "s", ["a"]).steps == []


# ----------------------------------------------------------------------------- regex


@pytest.mark.parametrize("pattern, what", [
    (r"(?<=order )\d+", "look-around"),
    (r"foo(?!bar)", "look-around"),
    (r"(\w)\1", "back-reference"),
    (r"(?P<x>a)(?P=x)", "back-reference"),
    (r"(?>ab)", "atomic"),
    (r"a++", "possessive"),
    (r"(?a)\w+", "ASCII"),
])
def test_python_only_regex_refused_at_validate_and_at_compile_time_naming_the_pattern(pattern, what):
    from pydantic import ValidationError

    rules = [{"reject_matching": {"column": "a", "patterns": ["ok", pattern]}}]
    with pytest.raises(ValidationError) as invalid:  # the spec model refuses it: a validate error
        quality(rules)
    assert "regex-not-portable" in str(invalid.value) and f"'{pattern}'" in str(invalid.value)
    # rules that skipped validation (built in code) are refused again when the plan is compiled
    from pydantic import create_model

    from llmspec.spec.models import MatchingArgs

    args = MatchingArgs.model_construct(column="a", columns=None, patterns=["ok", pattern], ignore_case=False,
                                        name=None, sources=None, skip_missing_columns=False)
    rule = create_model("RejectMatchingRule", reject_matching=(MatchingArgs, ...)).model_construct(reject_matching=args)
    with pytest.raises(SpecError) as exc:
        compile_cleaning(QualitySpec.model_construct(rules=[rule], keep_rejects=True), "s", ["a"])
    d = exc.value.first
    assert d.code == "regex-not-portable"
    assert repr(pattern) in d.message and what in d.message and "quality.rules[0]" in d.message


def test_regex_translation_and_classes_are_not_mistaken_for_groups():
    assert rust_regex(r"end\Z") == r"end\z"
    assert rust_regex(r"a\\Z") == r"a\\Z"  # an escaped backslash then a literal Z
    assert rust_regex(r"[(?=]x") == r"[(?=]x"  # inside a class these are literals
    with pytest.raises(RegexNotPortable):
        rust_regex(r"\N{BULLET}")


# ----------------------------------------------------------------------------- rules


def test_reader_rejects_count_as_corrupt_and_contract_and_stay_in_rejects():
    rejected = pl.DataFrame({"_rule": ["corrupt", "contract", "corrupt"], "_detail": ["not JSON", "n: not int", "x"],
                             "_origin": ["f:10", "f:11", "f:12"], "_raw": [b"{", None, b"\xff"]})
    r = clean([], {}, b=batch({"a": ["x"]}, rejected=rejected))
    assert r.rows_in == 4 and r.rows_kept == 1
    assert r.rejected == {"corrupt": 2, "contract": 1}
    raw = dict(zip(r.rejects["_origin"], r.rejects["_raw"]))
    assert raw["f:10"] == b"{" and raw["f:11"] is None


def test_drop_corrupt_control_chars_and_replacement_char():
    data = {"a": ["fine\ttab\nnewline\r", "bell\x07", "bad \ufffd byte", None], "b": ["x", "y", "z", "nul\x00"]}
    r = clean([{"drop_corrupt": {}}], data)
    assert r.kept["_origin"].to_list() == ["f:1"]
    details = dict(zip(r.rejects["_origin"], r.rejects["_detail"]))
    assert details["f:2"] == "a: control character U+0007"
    assert "U+FFFD" in details["f:3"]
    assert details["f:4"] == "b: control character U+0000"
    r = clean([{"drop_corrupt": {"control_chars": False}}], data)
    assert r.kept["_origin"].to_list() == ["f:1", "f:2", "f:4"]
    r = clean([{"drop_corrupt": {"columns": ["b"]}}], data)
    assert r.kept["_origin"].to_list() == ["f:1", "f:2", "f:3"]


def test_normalize_nfkc_whitespace_case_and_modified_counts_rows():
    data = {"a": ["Ｆｕｌｌ ﬁle", "  two   spaces\n", "same", None], "b": ["X", "y", "same", "Z  Z"]}
    r = clean([{"normalize": {"case": "lower"}}], data)
    assert r.kept["a"].to_list() == ["full file", "two spaces", "same", None]
    assert r.kept["b"].to_list() == ["x", "y", "same", "z z"]
    assert r.modified == {"normalize": 3}  # rows, not cells: row 1 changed in both columns
    r = clean([{"normalize": {"whitespace": "strip", "unicode": "none", "column": "a"}}], data)
    assert r.kept["a"].to_list() == ["Ｆｕｌｌ ﬁle", "two   spaces", "same", None]
    assert r.modified == {"normalize": 1}


def test_normalize_and_pii_reach_into_email_turns():
    turns = [[{"role": "customer", "content": "Ｈｉ   mail me at jo@example.com"},
              {"role": "agent", "content": "ok"}], [], None]
    data = {"query": ["Ｈｉ", "a", "b"], "turns": turns}
    r = clean([{"normalize": {}}, {"redact_pii": {}}], data, schema={"query": pl.String, "turns": TURNS})
    assert r.kept["turns"].to_list()[0] == [{"role": "customer", "content": "Hi mail me at <EMAIL>"},
                                            {"role": "agent", "content": "ok"}]
    assert r.kept["turns"].to_list()[1:] == [[], None]
    assert r.modified == {"normalize": 1, "redact_pii": 1}


def test_require_null_and_blank():
    data = {"a": ["x", None, "   ", ""], "b": ["y", "y", "y", "y"]}
    r = clean([{"require": {"columns": ["a", "b"]}}], data)
    assert r.kept["_origin"].to_list() == ["f:1"]
    assert rejects_of(r, "require")["_detail"].to_list() == ["a is missing", "a is blank", "a is blank"]
    r = clean([{"require": {"column": "a", "blank_is_missing": False}}], data)
    assert r.kept["_origin"].to_list() == ["f:1", "f:3", "f:4"]


def test_fill_constant_and_from_column_count_modified():
    data = {"a": ["x", None, "  ", "z"], "b": ["p", "q", "r", "s"], "n": [1, None, 3, None]}
    r = clean([{"fill": {"column": "a", "value": "unknown"}}], data)
    assert r.kept["a"].to_list() == ["x", "unknown", "unknown", "z"]
    assert r.modified == {"fill": 2}
    r = clean([{"fill": {"column": "a", "from_column": "b"}}, {"fill": {"column": "n", "value": 0}}], data)
    assert r.kept["a"].to_list() == ["x", "q", "r", "z"]
    assert r.kept["n"].to_list() == [1, 0, 3, 0]
    assert r.modified == {"fill#1": 2, "fill#2": 2}
    with pytest.raises(DataError) as exc:
        clean([{"fill": {"column": "n", "value": "many"}}], data)
    assert exc.value.first.code == "fill-type"


def test_reject_matching_names_the_pattern_and_keep_matching_rejects_the_rest():
    data = {"a": ["N/A", "real answer", "todo later", None], "b": ["x", "x", "x", "x"]}
    r = clean([{"reject_matching": {"column": "a", "patterns": ["^N/A$", "todo"], "ignore_case": True}}], data)
    assert r.kept["_origin"].to_list() == ["f:2", "f:4"]  # null matches nothing
    assert rejects_of(r, "reject_matching")["_detail"].to_list() == ["a matches '^N/A$'", "a matches 'todo'"]
    r = clean([{"keep_matching": {"column": "a", "patterns": ["answer", "later"]}}], data)
    assert r.kept["_origin"].to_list() == ["f:2", "f:3"]
    assert rejects_of(r, "keep_matching")["_detail"][0] == "a matches none of 'answer', 'later'"


@pytest.mark.skipif("replace_matching" not in RULE_ARGS, reason="replace_matching not in this spec version")
def test_replace_matching_rewrites_whole_values():
    data = {"input": ["<no input>", "keep me", "N/A"]}
    r = clean([{"replace_matching": {"column": "input", "patterns": [r"^\s*<no ?input>\s*$", "^N/A$"], "value": ""}}],
              data)
    assert r.kept["input"].to_list() == ["", "keep me", ""]
    assert r.modified == {"replace_matching": 2}


def test_length_chars_and_approximate_tokens_say_so():
    data = {"a": ["short", "x" * 50, "y" * 400, None]}
    r = clean([{"length": {"column": "a", "min_chars": 10}}, {"length": {"column": "a", "max_tokens": 20}}], data)
    assert r.kept["_origin"].to_list() == ["f:2", "f:4"]  # null is require's business
    assert rejects_of(r, "length#1")["_detail"].to_list() == ["a: 5 chars < min_chars 10"]
    detail = rejects_of(r, "length#2")["_detail"][0]
    assert detail.startswith("a: 100 tokens > max_tokens 20") and "chars/4" in detail
    assert any("ceil(chars / 4)" in n for n in r.notes)


def test_length_uses_the_tokenizer_on_surviving_rows_only():
    seen = []

    def words(texts):
        seen.extend(texts)
        return [len(t.split()) for t in texts]

    data = {"a": ["N/A", "one two three four", "one two", None]}
    r = clean([{"reject_matching": {"column": "a", "patterns": ["^N/A$"]}},
               {"length": {"column": "a", "min_tokens": 3}}], data, count_tokens=words)
    assert seen == ["one two three four", "one two"]
    assert r.kept["_origin"].to_list() == ["f:2", "f:4"]
    assert rejects_of(r, "length")["_detail"].to_list() == ["a: 2 tokens < min_tokens 3"]
    assert r.notes == []


def test_rules_apply_in_order_and_a_rejected_row_is_gone_for_later_rules():
    data = {"a": ["  Hello World", "hello world", "", "HELLO   world"]}
    # normalize first: the later rows are duplicates of the first; require sees "" after normalize
    r = clean([{"normalize": {}}, {"require": {"column": "a"}}, {"dedupe": {"method": "exact"}}], data)
    assert r.kept["_origin"].to_list() == ["f:1"]
    assert r.rejected == {"corrupt": 0, "contract": 0, "require": 1, "dedupe": 2}
    # a rejected first row is not the kept row of its duplicates
    r = clean([{"reject_matching": {"column": "a", "patterns": ["^  Hello"]}}, {"dedupe": {}}], data)
    assert r.kept["_origin"].to_list() == ["f:2", "f:3"]
    assert rejects_of(r, "dedupe")["_duplicate_of"].to_list() == ["f:2"]


def test_rows_in_must_add_up_or_it_is_an_internal_error():
    b = batch({"a": ["x", "y"]})
    b.rows_in = 5  # a reader that lost rows
    with pytest.raises(AccountingError, match="rows_in 5"):
        run_cleaning(b, compile_cleaning(quality([]), "src", ["a"]), progress=None)


def test_keep_rejects_false_keeps_only_the_reasons():
    b = batch({"a": ["x", None]})
    plan = compile_cleaning(quality([{"require": {"column": "a"}}], keep_rejects=False), "src", ["a"])
    r = run_cleaning(b, plan)
    assert r.rejects.columns == ["_rule", "_detail", "_origin", "_raw", "_duplicate_of"]
    assert r.rejects["_origin"].to_list() == ["f:2"]


def test_progress_reports_each_step_with_rows_in_play():
    seen = []
    clean([{"require": {"column": "a"}}, {"normalize": {}}], {"a": ["x", None, "y"]},
          progress=lambda p: seen.append((p.reason, p.done, p.total, int(p))))
    assert seen == [("require", 0, 2, 3), ("normalize", 1, 2, 2), ("done", 2, 2, 2)]


# ----------------------------------------------------------------------------- gates


def test_gates_overall_and_per_source_with_numbers():
    a = clean([{"require": {"column": "a"}}], {"a": ["x", None, None, None]})
    b = clean([{"require": {"column": "a"}}], {"a": ["x", "y", "z", "w"]})
    q = quality([], gates={"max_rejected_fraction": 0.3, "min_rows_after": 10},
                source_gates={"a": {"max_rejected_fraction": 0.5}, "b": {"min_rows_after": 4}})
    diags = check_gates({"a": a, "b": b}, q)
    msgs = [d.message for d in diags]
    assert len(diags) == 3 and all(d.code == "gate-failed" for d in diags)
    assert "source 'a': cleaning rejected 75.0% of rows (3 of 4)" in msgs[0] and "require 3" in msgs[0]
    assert msgs[1].startswith("all sources: cleaning rejected 37.5% of rows (3 of 8)")
    assert msgs[2].startswith("all sources: 5 rows left after cleaning (8 in), below quality.gates.min_rows_after 10")
    assert check_gates({"b": b}, quality([], source_gates={"b": {"min_rows_after": 4}})) == []


# ----------------------------------------------------------------------------- the command


SPEC = """\
llmspec: 1
project: clean-cmd
base_model: {id: builtin:tiny}
sources:
  tickets: {path: t.jsonl, format: jsonl}
quality:
  rules:
    - normalize: {}
    - require: {columns: [q, a]}
    - redact_pii: {}
    - dedupe: {columns: [q]}
  gates: {max_rejected_fraction: GATE}
format:
  style: chat
  map:
    tickets: {user: q, assistant: a}
"""


def _project(tmp_path, gate: float):
    lines = [json.dumps({"q": q, "a": a}) for q, a in
             [("Reset password?", "Use the link, or mail help@acme.example"), ("reset  password?", "dup"),
              ("Refund?", ""), ("Where is my order?", "On its way.")]]
    (tmp_path / "t.jsonl").write_bytes(("\n".join(lines) + "\n{broken\n").encode())
    (tmp_path / "llmspec.yaml").write_text(SPEC.replace("GATE", str(gate)))
    return tmp_path / "llmspec.yaml"


def test_clean_command_json_and_out_files(tmp_path):
    from click.testing import CliRunner

    from llmspec.commands.clean import clean_command

    spec = _project(tmp_path, 0.9)
    res = CliRunner().invoke(clean_command, [str(spec), "--json", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    t = doc["sources"]["tickets"]
    assert (t["rows_in"], t["rows_kept"]) == (5, 2)
    assert t["rejected"] == {"corrupt": 1, "contract": 0, "require": 1, "dedupe": 1}
    assert t["modified"] == {"normalize": 1, "redact_pii": 1} and "profile" in t and doc["gates"] == []
    kept = pl.read_parquet(tmp_path / "out" / "tickets.parquet")
    rejects = pl.read_parquet(tmp_path / "out" / "tickets.rejects.parquet")
    assert kept.height == 2 and "<EMAIL>" in kept["a"][0]
    assert sorted(rejects["_rule"].to_list()) == ["corrupt", "dedupe", "require"]
    assert rejects.filter(pl.col("_rule") == "corrupt")["_raw"][0] == b"{broken"
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


def test_clean_command_funnel_gate_failure_and_errors(tmp_path):
    from click.testing import CliRunner

    from llmspec.commands.clean import clean_command

    spec = _project(tmp_path, 0.1)
    res = CliRunner().invoke(clean_command, [str(spec)])
    assert res.exit_code == 1
    assert "rows in" in res.stdout and "- require" in res.stdout and "kept" in res.stdout
    assert "a is blank" in res.stdout  # a sample row with its reason
    assert "gate-failed" in res.stderr and "60.0% of rows (3 of 5)" in res.stderr
    res = CliRunner().invoke(clean_command, [str(spec), "--source", "tickes"])
    assert res.exit_code == 1 and "did you mean 'tickets'" in res.stderr and "Traceback" not in res.output

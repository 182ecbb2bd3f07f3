"""format: -> FormatPlan -> rendered records; render errors and empty renders are counted rejects."""

from __future__ import annotations

import json

import polars as pl
import pytest

from llmspec.compiler.formatting import AXOLOTL_DATASET_TYPES, compile_format, is_column_ref
from llmspec.runtime.dataset.build import RULE_EMPTY, RULE_ERROR, build_dataset
from llmspec.spec.errors import DataError, Pos, SpecError
from llmspec.spec.models import FormatSpec, SplitSpec

NO_EVAL = SplitSpec(eval_fraction=0.0)


def fmt(style: str, mapping: dict, system: str | None = None) -> FormatSpec:
    return FormatSpec.model_validate({"style": style, "map": mapping, **({"system": system} if system else {})})


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def frame(**cols) -> pl.DataFrame:
    n = len(next(iter(cols.values())))
    return pl.DataFrame({**cols, "_origin": [f"data.jsonl:{i + 1}" for i in range(n)]})


# ----------------------------------------------------------------------------- compile


def test_bare_identifiers_are_columns_everything_else_is_a_template():
    assert is_column_ref("answer") and is_column_ref("_x1")
    assert not is_column_ref("{{ answer }}") and not is_column_ref("answer ") and not is_column_ref("a.b")
    plan = compile_format(fmt("chat", {"faq": {"user": "question", "assistant": "A: {{ answer }}"}}))
    fields = {f.name: f for f in plan.sources["faq"].fields}
    assert (fields["user"].kind, fields["user"].columns) == ("column", ("question",))
    assert (fields["assistant"].kind, fields["assistant"].columns) == ("template", ("answer",))


@pytest.mark.parametrize("style,mapping,expected", [
    ("chat", {"s": {"user": "q", "assistant": "a"}}, {"type": "chat_template", "field_messages": "messages",
                                                      "roles_to_train": ["assistant"], "train_on_eos": "turn"}),
    ("alpaca", {"s": {"instruction": "q", "output": "a"}}, {"type": "alpaca"}),
    ("completion", {"s": {"text": "t"}}, {"type": "completion", "field": "text"}),
    ("input_output", {"s": {"segments": [{"text": "q", "train": False}, {"text": "a", "train": True}]}},
     {"type": "input_output"}),
])
def test_each_style_maps_to_the_axolotl_type_that_reads_it(style, mapping, expected):
    plan = compile_format(fmt(style, mapping))
    for key, value in expected.items():
        assert plan.axolotl_dataset[key] == value
    if style == "chat":
        assert plan.axolotl_dataset["message_property_mappings"] == {"role": "role", "content": "content"}
    assert plan.to_dict()["style"] == style
    json.dumps(plan.to_dict())  # plain data


def test_unknown_columns_and_bad_templates_fail_at_compile_with_positions():
    spec = fmt("chat", {"faq": {"user": "questoin", "assistant": "{{ answer }"}, "ghost": {"user": "a",
                                                                                          "assistant": "b"}})
    seen = []

    def locate(path):
        seen.append(path)
        return Pos("llmspec.yaml", len(seen), 3)

    with pytest.raises(SpecError) as err:
        compile_format(spec, {"faq": ["question", "answer"]}, locate=locate)
    codes = {d.code for d in err.value.diagnostics}
    assert codes == {"unknown-column", "bad-template", "unknown-source"}
    unknown = next(d for d in err.value.diagnostics if d.code == "unknown-column")
    assert "did you mean 'question'" in unknown.hint
    assert ("format", "map", "faq", "user") in seen and ("format", "map", "faq", "assistant") in seen
    assert all(d.pos is not None for d in err.value.diagnostics)


def test_template_variables_are_checked_against_columns_but_not_reserved_tokens():
    spec = fmt("completion", {"docs": {"text": "{{ title }}\n{{ body }}{{ eos_token }}"}})
    with pytest.raises(SpecError) as err:
        compile_format(spec, {"docs": ["title", "text"]})
    assert "'body'" in err.value.diagnostics[0].message
    compile_format(spec, {"docs": ["title", "body"]})  # eos_token is provided, not a column


def test_segments_need_something_to_train():
    with pytest.raises(SpecError) as err:
        compile_format(fmt("input_output", {"s": {"segments": [{"text": "q", "train": False}]}}))
    assert err.value.diagnostics[0].code == "format-segments"


# ----------------------------------------------------------------------------- rendering


def test_chat_records_with_system_prompt_and_no_origin(tmp_path):
    plan = compile_format(fmt("chat", {"faq": {"user": "question", "assistant": "{{ answer | trim }}"}},
                              system="You are Acme's assistant."))
    res = build_dataset({"faq": frame(question=["Where is my order?"], answer=["  In transit.  "])}, plan,
                        NO_EVAL, tmp_path)
    (record,) = lines(res.train_path)
    assert record == {"messages": [
        {"role": "system", "content": "You are Acme's assistant."},
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "In transit."},
    ]}
    assert AXOLOTL_DATASET_TYPES["chat"]["field_messages"] in record
    (origin,) = lines(res.origins_path)
    assert origin == {"split": "train", "line": 0, "source": "faq", "origin": "data.jsonl:1"}
    assert res.eval_path is None and not (tmp_path / "eval.jsonl").exists()


def test_thread_turns_pass_straight_through_as_multi_turn_chat(tmp_path):
    plan = compile_format(fmt("chat", {"mail": {"messages": "turns"}}, system="Be kind."),
                          {"mail": ["thread_id", "query", "reply", "turns"]})
    turns = [
        [{"role": "user", "content": "My plug won't pair."}, {"role": "assistant", "content": "Hold it 5s."},
         {"role": "user", "content": "Still no."}, {"role": "assistant", "content": "Try the 2.4GHz band."}],
        [{"role": "system", "content": "Thread-specific rules."}, {"role": "user", "content": "Refund?"},
         {"role": "assistant", "content": "Within 30 days."}],
        [{"role": "user", "content": "Hello?"}],                                    # nothing to learn
        [{"role": "user", "content": "Hi"}, {"role": "agent", "content": "Hello"}],  # unknown role
    ]
    df = pl.DataFrame({"thread_id": ["t1", "t2", "t3", "t4"], "query": ["a", "b", "c", "d"],
                       "reply": ["a", "b", "c", "d"], "turns": turns,
                       "_origin": ["support.mbox:<a@x>", "support.mbox:<b@x>", "support.mbox:<c@x>",
                                   "support.mbox:<d@x>"]})
    assert df.schema["turns"] == pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    res = build_dataset({"mail": df}, plan, NO_EVAL, tmp_path)
    first, second = lines(res.train_path)
    assert first["messages"][0] == {"role": "system", "content": "Be kind."}
    assert first["messages"][1:] == turns[0]
    assert second["messages"] == turns[1]  # the thread's own system turn wins over format.system
    assert res.per_source["mail"].rejected == {RULE_EMPTY: 1, RULE_ERROR: 1}
    bad = res.rejects.filter(pl.col("rule") == RULE_ERROR).row(0, named=True)
    assert bad["_origin"] == "support.mbox:<d@x>" and "'agent'" in bad["message"]


def test_render_errors_name_source_origin_and_template(tmp_path):
    template = "{{ question }} ({{ product }})"
    plan = compile_format(fmt("chat", {"tickets": {"user": template, "assistant": "answer"},
                                       "faq": {"user": "{{ q }} x{{ 10 // n }}", "assistant": "a"}}))
    res = build_dataset({"tickets": frame(question=["q1", "q2"], answer=["a1", "a2"]),
                         "faq": frame(q=["ok", "bad"], n=[2, 0], a=["fine", "never"])}, plan, NO_EVAL, tmp_path)
    assert res.per_source["tickets"].rejected == {RULE_ERROR: 2}
    assert res.per_source["faq"].to_dict() == {"rows_in": 2, "examples": 1, "rejected": {RULE_ERROR: 1}}
    msg = res.rejects.filter(pl.col("source") == "tickets")["message"][0]
    assert "source 'tickets'" in msg and "data.jsonl:1" in msg and template in msg and "'product' is undefined" in msg
    bad = res.rejects.filter(pl.col("source") == "faq").row(0, named=True)
    assert bad["_origin"] == "data.jsonl:2" and "ZeroDivisionError" in bad["message"]
    assert lines(res.train_path) == [{"messages": [{"role": "user", "content": "ok x5"},
                                                   {"role": "assistant", "content": "fine"}]}]


def test_no_example_at_all_is_a_data_error_naming_the_first_problem(tmp_path):
    plan = compile_format(fmt("completion", {"s": {"text": "{{ missing }}"}}))
    with pytest.raises(DataError) as err:
        build_dataset({"s": frame(text=["x"])}, plan, NO_EVAL, tmp_path)
    assert err.value.first.code == "dataset-empty" and "'missing' is undefined" in err.value.first.message


def test_sandbox_blocks_attribute_escapes(tmp_path):
    evil = "{{ question.__class__.__mro__[1].__subclasses__() }}"
    plan = compile_format(fmt("completion", {"s": {"text": evil}}))
    with pytest.raises(DataError) as err:  # every row rejected -> no dataset at all
        build_dataset({"s": frame(question=["x"])}, plan, NO_EVAL, tmp_path)
    assert "SecurityError" in err.value.first.message


def test_empty_renders_are_rejected_counted_kept_with_origin_and_never_written(tmp_path):
    plan = compile_format(fmt("alpaca", {"faq": {"instruction": "question", "input": "context",
                                                 "output": "{{ answer | trim }}"}}))
    df = frame(question=["How do I reset?", "Cancel?", "   ", "Refund?"],
               context=[None, "", "x", "order 12"],
               answer=["Click reset.", "  \n ", "Yes.", "Within 30 days."])
    res = build_dataset({"faq": df}, plan, NO_EVAL, tmp_path)
    written = lines(res.train_path)
    assert [r["instruction"] for r in written] == ["How do I reset?", "Refund?"]
    assert written[0]["input"] == ""  # optional field may be empty
    assert res.per_source["faq"].to_dict() == {"rows_in": 4, "examples": 2, "rejected": {RULE_EMPTY: 2}}
    assert sorted(res.rejects["_origin"].to_list()) == ["data.jsonl:2", "data.jsonl:3"]
    assert all(r["output"].strip() and r["instruction"].strip() for r in written)


def test_input_output_segments_labels_and_eos(tmp_path):
    plan = compile_format(fmt("input_output", {"s": {"segments": [
        {"text": "Q: {{ q }}\n", "train": False},
        {"text": "{% if ctx %}Context: {{ ctx }}\n{% endif %}", "train": False},
        {"text": "A: {{ a }}{{ eos_token }}", "train": True},
    ]}}))
    df = frame(q=["one", "two"], ctx=[None, "c"], a=["first", "second"])
    res = build_dataset({"s": df}, plan, NO_EVAL, tmp_path, special_tokens={"eos_token": "</s>"})
    one, two = lines(res.train_path)
    assert one == {"segments": [{"label": False, "text": "Q: one\n"}, {"label": True, "text": "A: first</s>"}]}
    assert [s["text"] for s in two["segments"]] == ["Q: two\n", "Context: c\n", "A: second</s>"]


def test_input_output_with_only_blank_trained_text_is_rejected(tmp_path):
    plan = compile_format(fmt("input_output", {"s": {"segments": [
        {"text": "q", "train": False}, {"text": "{{ a }}", "train": True}]}}))
    res = build_dataset({"s": frame(q=["x", "y"], a=["ok", "  "])}, plan, NO_EVAL, tmp_path)
    assert res.train_size == 1 and res.per_source["s"].rejected == {RULE_EMPTY: 1}


def test_sources_without_a_format_entry_are_ignored_and_counts_are_per_source(tmp_path):
    plan = compile_format(fmt("completion", {"docs": {"text": "text"}}))
    res = build_dataset({"docs": frame(text=["a", "b"]), "other": frame(text=["z"])}, plan, NO_EVAL, tmp_path)
    assert set(res.per_source) == {"docs"} and res.per_source["docs"].examples == 2

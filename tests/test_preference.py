"""Preference training (training.method dpo | orpo | kto): spec checks at the spec line, the
Axolotl config judged by Axolotl 0.19's own schema, and the records each method's dataset type reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmspec.compiler.axolotl_config import compile_axolotl_config
from llmspec.compiler.formatting import PREFERENCE_DATASET_TYPES, compile_format
from llmspec.runtime.feedback.store import Feedback, iter_training_rows
from llmspec.spec.load import check_spec
from llmspec.spec.models import ProjectSpec

PAIRS = {"faq": {"user": "question", "chosen": "good", "rejected": "bad"}}
LABELLED = {"faq": {"user": "question", "assistant": "answer", "label": "label"}}
MAPS = {"dpo": PAIRS, "orpo": PAIRS, "kto": LABELLED}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from llmspec.runtime.models.tinymodel import resolve_builtin

    return str(resolve_builtin("builtin:tiny", cache_dir=tmp_path_factory.mktemp("cache")))


def make_spec(method: str, hardware="cpu", **training) -> ProjectSpec:
    return ProjectSpec.model_validate({
        "llmspec": 1, "project": "demo", "base_model": {"id": "builtin:tiny"},
        "sources": {"faq": {"format": "jsonl", "path": "faq.jsonl"}},
        "format": {"style": "chat", "system": "Be brief.", "map": MAPS[method]},
        "training": {"method": method, "hardware": hardware, **training},
    })


def compile_for(spec: ProjectSpec, model: str, run_dir: Path, hardware: str = "cpu"):
    return compile_axolotl_config(spec, model_path=model, dataset={"train": str(run_dir / "train.jsonl")},
                                  run_dir=run_dir, hardware=hardware,
                                  format_plan=compile_format(spec.format, method=spec.training.method))


# ----------------------------------------------------------------------------- the Axolotl config


@pytest.mark.parametrize("hardware", ["cpu", "cuda"])
@pytest.mark.parametrize("method", ["dpo", "orpo", "kto"])
def test_every_preference_config_passes_axolotl_validation(method, hardware, tiny_model, tmp_path):
    pytest.importorskip("axolotl")
    from llmspec.runtime.train.axolotl_check import validate_axolotl_config

    spec = make_spec(method, "cpu" if hardware == "cpu" else {"type": "cuda"}, preference={"beta": 0.2})
    compiled = compile_for(spec, tiny_model, tmp_path, hardware)
    cfg = compiled.config
    assert cfg["rl"] == method and cfg["adapter"] == "lora"
    entry = cfg["datasets"][0]
    assert entry["type"] == PREFERENCE_DATASET_TYPES[method]["type"]
    assert cfg["orpo_alpha" if method == "orpo" else "rl_beta"] == 0.2
    assert compiled.origins["rl"] == ("training", "method")
    assert (cfg.get("remove_unused_columns") is False) == (method == "kto")
    assert validate_axolotl_config(compiled, lambda path: None) == []


def test_kto_without_remove_unused_columns_is_refused_by_axolotl(tiny_model, tmp_path):
    # The key the compiler adds for kto is not decoration: Axolotl's schema refuses kto without it.
    pytest.importorskip("axolotl")
    from llmspec.runtime.train.axolotl_check import validate_axolotl_config

    compiled = compile_for(make_spec("kto"), tiny_model, tmp_path)
    compiled.config.pop("remove_unused_columns")
    problems = validate_axolotl_config(compiled, lambda path: None)
    assert problems and "remove_unused_columns" in problems[0].message


def test_full_weights_and_sft_methods_compile_without_rl(tiny_model, tmp_path):
    full = compile_for(make_spec("dpo", preference={"adapter": "full"}), tiny_model, tmp_path).config
    assert full["rl"] == "dpo" and "adapter" not in full and "rl_beta" not in full
    spec = ProjectSpec.model_validate({**make_spec("dpo").model_dump(by_alias=True, exclude_none=True),
                                       "format": {"style": "chat", "map": {"faq": {"user": "q", "assistant": "a"}}},
                                       "training": {"method": "lora", "hardware": "cpu"}})
    assert "rl" not in compile_for(spec, tiny_model, tmp_path).config


def test_qlora_preference_adapter_needs_cuda():
    with pytest.raises(Exception, match="qlora needs a CUDA GPU"):
        make_spec("dpo", preference={"adapter": "qlora"})


# ----------------------------------------------------------------------------- spec errors


SPEC = """\
llmspec: 1
project: demo
base_model: {{id: builtin:tiny}}
sources:
  fb: {{format: feedback{extra}}}
format:
  style: {style}
  map:
    fb: {mapping}
training:
  method: {method}
  hardware: cpu
"""


def diagnostics(tmp_path, **kw) -> list:
    tail = kw.pop("tail", "")
    values = {"extra": "", "style": "chat", "mapping": "{user: prompt, assistant: answer}", "method": "dpo", **kw}
    path = tmp_path / "llmspec.yaml"
    path.write_text(SPEC.format(**values) + tail)
    return [d for d in check_spec(path).diagnostics if d.severity == "error"]


def test_dpo_without_pairs_is_a_spec_error_at_the_mapping(tmp_path):
    diags = diagnostics(tmp_path)
    by_code = {d.code: d for d in diags}
    pairs = by_code["preference-pairs"]
    assert "rejected" in pairs.message and "dpo" in pairs.message
    assert (pairs.pos.line, pairs.pos.col) == (9, 5)  # format.map.fb
    # `assistant` is not a dpo field: the hint says what is
    assert "chosen" in by_code["style-mismatch"].hint


def test_kto_without_a_label_and_preference_on_a_non_chat_style(tmp_path):
    (kto,) = diagnostics(tmp_path, method="kto")
    assert kto.code == "preference-pairs" and "label" in kto.message
    (style,) = diagnostics(tmp_path, style="alpaca", mapping="{instruction: prompt, output: answer}")
    assert style.code == "preference-style" and style.pos.line == 7


def test_thumbs_down_rows_are_refused_unless_the_method_is_kto(tmp_path):
    (down,) = diagnostics(tmp_path, extra=", include_down: true", method="lora")
    assert down.code == "feedback-down" and down.pos.line == 5
    ok = SPEC.format(extra=", include_down: true", style="chat", method="kto",
                     mapping="{user: prompt, assistant: answer, label: label}")
    (tmp_path / "ok.yaml").write_text(ok)
    (holdout,) = diagnostics(tmp_path, method="kto", mapping="{user: prompt, assistant: answer, label: label}",
                             tail="acceptance: {holdout: {count: 2}}\n")
    assert holdout.code == "conflict" and "holdout" in holdout.message and holdout.pos.line == 13
    assert check_spec(tmp_path / "ok.yaml").spec.training.method == "kto"


# ----------------------------------------------------------------------------- records


def entry(i, *, rating=None, correction=None):
    return Feedback(id=f"x{i}", created_at="2026-01-01", run="r1", answer=f"wrong {i}",
                    messages=[{"role": "system", "content": "S"}, {"role": "user", "content": f"q{i}"}],
                    rating=rating, correction=correction, note=None, feedback_at=None)


def test_feedback_rows_carry_the_rejected_answer_and_a_label():
    entries = [entry(1, rating="down", correction="right 1"), entry(2, rating="up"), entry(3, rating="down")]
    rows = {i: (row, why) for i, row, why in iter_training_rows(entries, include_up=True, include_down=True)}
    assert rows["x1"][0]["answer"] == "right 1" and rows["x1"][0]["rejected"] == "wrong 1"
    assert [rows[k][0]["label"] for k in ("x1", "x2", "x3")] == [True, True, False]
    assert [rows[k][0]["rating"] for k in ("x1", "x2", "x3")] == ["corrected", "up", "down"]
    without = {i: row for i, row, _ in iter_training_rows(entries, include_up=True)}
    assert without["x3"] is None


def build(method, rows, tmp_path, chat_text=None):
    import polars as pl

    from llmspec.runtime.dataset.build import build_dataset
    from llmspec.spec.models import SplitSpec

    spec = make_spec(method)
    plan = compile_format(spec.format, {"faq": list(rows[0])}, method=method)
    frame = pl.DataFrame(rows).with_columns(pl.Series("_origin", [f"faq#{i}" for i in range(len(rows))]))
    result = build_dataset({"faq": frame}, plan, SplitSpec(eval_fraction=0.0), tmp_path, chat_text=chat_text)
    lines = [json.loads(x) for x in result.train_path.read_text().splitlines()]
    return result, lines


def test_dpo_records_hold_the_conversation_and_both_answers_and_identical_pairs_are_rejected(tmp_path):
    rows = [{"question": "q1", "good": "yes", "bad": "no"}, {"question": "q2", "good": "Same.", "bad": "same. "}]
    result, lines = build("dpo", rows, tmp_path)
    assert lines == [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q1"}],
                      "chosen": "yes", "rejected": "no"}]
    assert result.per_source["faq"].rejected == {"same_answers": 1}
    assert result.per_source["faq"].rows_in == result.per_source["faq"].examples + 1


def test_orpo_records_are_whole_conversations_ending_in_each_answer(tmp_path):
    _, lines = build("orpo", [{"question": "q1", "good": "yes", "bad": "no"}], tmp_path)
    assert lines == [{"system": "Be brief.",
                      "chosen": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "yes"}],
                      "rejected": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "no"}]}]


def test_kto_records_are_written_through_the_chat_template_with_labels(tiny_model, tmp_path):
    from llmspec.runtime.dataset.preference import ChatText
    from llmspec.runtime.dataset.preview import load_tokenizer

    rows = [{"question": "q1", "answer": "fine", "label": "up"}, {"question": "q2", "answer": "bad", "label": False},
            {"question": "q3", "answer": "meh", "label": "maybe"}]
    result, lines = build("kto", rows, tmp_path, chat_text=ChatText(load_tokenizer(tiny_model)))
    assert [line["label"] for line in lines] == [True, False]
    # ChatML as builtin:tiny's template writes it: the prompt ends where the answer starts
    assert lines[0]["prompt"].endswith("<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\n")
    assert lines[0]["prompt"].startswith("<|im_start|>system\nBe brief.")
    assert lines[0]["completion"] == "fine<|im_end|>"
    assert result.per_source["faq"].rejected == {"format_error": 1}


def test_kto_without_a_tokenizer_says_so(tmp_path):
    from llmspec.spec.errors import DataError

    with pytest.raises(DataError, match="chat template"):
        build("kto", [{"question": "q1", "answer": "fine", "label": True}], tmp_path)


def test_preference_answers_are_measured_one_by_one_and_too_long_pairs_rejected(tiny_model, tmp_path):
    import polars as pl

    from llmspec.runtime.dataset.build import build_dataset
    from llmspec.runtime.dataset.lengths import length_check
    from llmspec.runtime.dataset.preview import load_tokenizer
    from llmspec.spec.models import SplitSpec

    tok = load_tokenizer(tiny_model)
    plan = compile_format(make_spec("dpo").format, {"faq": ["question", "good", "bad"]}, method="dpo")
    rows = [{"question": "q1", "good": "yes", "bad": "no"},
            {"question": "q2", "good": "short", "bad": "word " * 200}]
    frame = pl.DataFrame(rows).with_columns(pl.Series("_origin", ["faq#0", "faq#1"]))
    lengths = length_check(tok, plan, sequence_len=64, chat_template="tokenizer_default", policy="reject")
    result = build_dataset({"faq": frame}, plan, SplitSpec(eval_fraction=0.0), tmp_path, lengths=lengths)
    assert result.per_source["faq"].rejected == {"too_long": 1} and result.train_size == 1
    cut = length_check(tok, plan, sequence_len=64, chat_template="tokenizer_default", policy="truncate")
    result = build_dataset({"faq": frame}, plan, SplitSpec(eval_fraction=0.0), tmp_path / "t", lengths=cut)
    lines = [json.loads(x) for x in result.train_path.read_text().splitlines()]
    assert result.train_size == 2 and lines[1]["chosen"] == "short" and len(lines[1]["rejected"]) < 1000
    assert max(result.token_counts["train"]) <= 64


def test_dpo_eval_records_make_holdout_tests_against_the_chosen_answer():
    from llmspec.compiler.acceptance import holdout_tests
    from llmspec.spec.models import HoldoutSpec

    record = {"messages": [{"role": "user", "content": "q1"}], "chosen": "right", "rejected": "wrong"}
    orpo = {"system": "S", "chosen": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "ok"}],
            "rejected": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "no"}]}
    dpo, orpo_test = holdout_tests(HoldoutSpec(count=2), [record, orpo])
    assert dpo.messages == ({"role": "user", "content": "q1"},)
    assert "right" in json.dumps([e.__dict__ for e in dpo.expectations], default=str)
    assert orpo_test.messages == ({"role": "system", "content": "S"}, {"role": "user", "content": "q2"})
    assert "'ok'" in json.dumps([e.__dict__ for e in orpo_test.expectations], default=str)


def test_sft_weight_adds_the_supervised_loss_beside_dpo(tiny_model, tmp_path):
    pytest.importorskip("axolotl")
    from llmspec.runtime.train.axolotl_check import validate_axolotl_config

    compiled = compile_for(make_spec("dpo", preference={"sft_weight": 0.5}), tiny_model, tmp_path)
    assert compiled.config["dpo_loss_type"] == ["sigmoid", "sft"]
    assert compiled.config["dpo_loss_weights"] == [1.0, 0.5]
    assert compiled.origins["dpo_loss_type"] == ("training", "preference", "sft_weight")
    assert validate_axolotl_config(compiled, lambda path: None) == []
    with pytest.raises(Exception, match="sft_weight applies to training.method dpo only"):
        make_spec("orpo", preference={"sft_weight": 0.5})


@pytest.mark.parametrize("method", ["dpo", "orpo", "kto"])
def test_previews_show_the_chosen_answer_trained_and_the_other_side_after_it(method, tiny_model, tmp_path):
    pytest.importorskip("axolotl")
    from llmspec.runtime.dataset.preference import ChatText
    from llmspec.runtime.dataset.preview import load_tokenizer, render_examples

    tok = load_tokenizer(tiny_model)
    rows = ([{"question": "q1", "answer": "fine", "label": False}] if method == "kto"
            else [{"question": "q1", "good": "Hold it.", "bad": "Buy one."}])
    _, lines = build(method, rows, tmp_path, chat_text=ChatText(tok))
    plan = compile_format(make_spec(method).format, {"faq": list(rows[0])}, method=method)
    (shown,) = render_examples("", plan, lines, 1, tokenizer=tok)
    text = shown.plain()
    assert "<|im_start|>user\nq1<|im_end|>" in text
    if method == "kto":
        assert "[[fine<|im_end|>]]" in text and text.endswith("(label: undesirable)")
    else:
        assert "[[Hold it.<|im_end|>" in text and text.endswith("(rejected: Buy one.)")
    assert shown.n_trained > 0


def test_orpo_refuses_a_conversation_whose_turns_do_not_alternate(tmp_path):
    import polars as pl

    from llmspec.runtime.dataset.build import build_dataset
    from llmspec.spec.models import FormatSpec, SplitSpec

    fmt = FormatSpec.model_validate({"style": "chat", "map": {"faq": {"messages": "turns", "chosen": "good",
                                                                       "rejected": "bad"}}})
    plan = compile_format(fmt, {"faq": ["turns", "good", "bad"]}, method="orpo")
    user = {"role": "user", "content": "q"}
    frame = pl.DataFrame({"turns": [[user], [user, user]], "good": ["yes", "yes"], "bad": ["no", "no"],
                          "_origin": ["faq#0", "faq#1"]})
    result = build_dataset({"faq": frame}, plan, SplitSpec(eval_fraction=0.0), tmp_path)
    assert result.train_size == 1 and result.per_source["faq"].rejected == {"format_error": 1}
    assert "alternate" in result.rejects["message"][0]


def test_plan_estimates_say_the_time_is_for_supervised_training():
    from llmspec.compiler.estimates import TokenStats, estimate

    counts = {"train_size": 8, "eval_size": 0}
    sft = estimate(counts, make_spec("dpo").training.model_copy(update={"method": "lora"}), "cpu", TokenStats([50] * 8))
    dpo = estimate(counts, make_spec("dpo").training, "cpu", TokenStats([50] * 8))
    assert "undercounts dpo" in dpo["time_note"] and "undercounts" not in sft["time_note"]

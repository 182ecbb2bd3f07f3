"""Real Axolotl on compiled CPU configs for builtin:tiny: preprocess succeeds, counts match, and the
labels train exactly what we say they train (chat: the assistant turns only). The preview's marks
are checked against the labels Axolotl itself wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from llmspec.compiler.axolotl_config import compile_axolotl_config
from llmspec.runtime.train.config_file import write_training_config
from llmspec.compiler.formatting import compile_format
from llmspec.runtime.dataset.build import build_dataset
from llmspec.runtime.dataset.preview import load_tokenizer, render_examples
from llmspec.spec.models import ProjectSpec

IGNORE = -100
END = "<|im_end|>"  # the tiny model's end-of-turn (and eos) token

MAPS = {
    "chat": {"faq": {"user": "question", "assistant": "answer"}, "mail": {"messages": "turns"}},
    "alpaca": {"faq": {"instruction": "question", "input": "{{ product }}", "output": "answer"}},
    "completion": {"faq": {"text": "Q: {{ question }}\nA: {{ answer }}{{ eos_token }}"}},
    "input_output": {"faq": {"segments": [{"text": "Q: {{ question }}\n", "train": False},
                                          {"text": "A: {{ answer }}{{ eos_token }}", "train": True}]}},
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from llmspec.runtime.models.tinymodel import resolve_builtin

    return str(resolve_builtin("builtin:tiny", cache_dir=tmp_path_factory.mktemp("cache")))


def faq_frame(n: int = 20) -> pl.DataFrame:
    return pl.DataFrame({
        "question": [f"How do I reset my password for account {i}?" for i in range(n)],
        "answer": [f"Click Forgot password on the login page, then follow the link {i}." for i in range(n)],
        "product": ["router" if i % 2 else "" for i in range(n)],
        "_origin": [f"faq.jsonl:{i + 1}" for i in range(n)],
    })


def mail_frame() -> pl.DataFrame:
    threads = [
        [{"role": "user", "content": "My order has not arrived."},
         {"role": "assistant", "content": "Sorry! Please send the order number."},
         {"role": "user", "content": "It is in the email you sent me."},
         {"role": "assistant", "content": "Thank you. It ships on Monday."}],
        [{"role": "user", "content": "Can I get a refund?"},
         {"role": "assistant", "content": "Yes, within thirty days of purchase."}],
        [{"role": "user", "content": "How do I cancel my subscription?"},
         {"role": "assistant", "content": "From the Billing page in your account settings."},
         {"role": "user", "content": "Will I be charged again?"},
         {"role": "assistant", "content": "No, your plan stays active until the end of the period."}],
    ]
    return pl.DataFrame({"thread_id": ["t1", "t2", "t3"], "turns": threads,
                         "_origin": ["support.mbox:<1@acme>", "support.mbox:<2@acme>", "support.mbox:<3@acme>"]})


def spec_for(style: str, eval_fraction: float) -> ProjectSpec:
    return ProjectSpec.model_validate({
        "llmspec": 1, "project": "pre", "base_model": {"id": "builtin:tiny"},
        "sources": {"faq": {"format": "jsonl", "path": "faq.jsonl"}, "mail": {"format": "mbox", "path": "m.mbox"}},
        "format": {"style": style, "system": "You are Acme's support assistant.", "map": MAPS[style]},
        "split": {"eval_fraction": eval_fraction, "seed": 3},
        "training": {"method": "lora", "hardware": "cpu", "sequence_len": 256},
    })


def compile_dataset(style: str, tiny: str, run: Path, eval_fraction: float):
    spec = spec_for(style, eval_fraction)
    plan = compile_format(spec.format)
    tok = load_tokenizer(tiny)
    frames = {"faq": faq_frame(), "mail": mail_frame()}
    result = build_dataset(frames, plan, spec.split, run / "data",
                           special_tokens={"bos_token": tok.bos_token or "", "eos_token": tok.eos_token})
    compiled = compile_axolotl_config(spec, model_path=tiny, dataset=result.paths, run_dir=run,
                                      format_plan=plan, hardware="cpu")
    write_training_config(compiled)
    return spec, plan, tok, result, compiled


def run_preprocess(compiled) -> float:
    env = {**os.environ, **compiled.env}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    started = time.monotonic()
    proc = subprocess.run(["axolotl", "preprocess", str(compiled.config_path)], env=env, cwd=compiled.config_path.parent,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return time.monotonic() - started


def prepared_splits(compiled) -> list[list[dict]]:
    from datasets import load_from_disk

    root = Path(compiled.config["dataset_prepared_path"])
    return [load_from_disk(str(d)).to_list() for d in sorted(root.iterdir()) if d.is_dir()]


def records(path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines()] if path else []


def trained_text(tok, row) -> str:
    return tok.decode([i for i, lab in zip(row["input_ids"], row["labels"]) if lab != IGNORE],
                      skip_special_tokens=False)


def assert_preview_matches_axolotl(tok, plan, recs, rows, tiny):
    """The preview's trained marks are exactly Axolotl's labels != -100 for the same record."""
    by_ids = {tuple(r["input_ids"]): r for r in rows}
    shown = render_examples(tiny, plan, recs, len(recs), sequence_len=256, tokenizer=tok)
    matched = 0
    for ex in shown:
        row = by_ids.get(tuple(ex.input_ids))
        assert row is not None, f"preview tokens differ from Axolotl's for {ex.plain()!r}"
        assert ex.trained_mask == [lab != IGNORE for lab in row["labels"]]
        matched += 1
    assert matched == len(rows)


# ----------------------------------------------------------------------------- the real thing


@pytest.mark.slow
def test_chat_preprocess_counts_and_trains_assistant_turns_only(tiny_model, tmp_path):
    pytest.importorskip("axolotl")
    spec, plan, tok, result, compiled = compile_dataset("chat", tiny_model, tmp_path, 0.2)
    assert (result.train_size, result.eval_size) == (18, 5)  # 20 faq + 3 threads, a fifth held out
    seconds = run_preprocess(compiled)
    print(f"axolotl preprocess (chat, train+eval): {seconds:.1f}s")
    sizes = sorted(len(rows) for rows in prepared_splits(compiled))
    assert sizes == sorted([result.train_size, result.eval_size])

    recs = records(result.train_path) + records(result.eval_path)
    rows = [row for rows in prepared_splits(compiled) for row in rows]
    by_text = {tok.apply_chat_template(r["messages"], tokenize=False): r for r in recs}
    multi_turn = 0
    for row in rows:
        record = by_text[tok.decode(row["input_ids"], skip_special_tokens=False)]
        assistant = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
        multi_turn += len(assistant) > 1
        # Every assistant turn (and its end-of-turn token) is trained; nothing else is.
        assert trained_text(tok, row) == "".join(a + END for a in assistant)
        assert record["messages"][0] == {"role": "system", "content": "You are Acme's support assistant."}
    assert multi_turn == 2
    assert_preview_matches_axolotl(tok, plan, recs, rows, tiny_model)


@pytest.mark.slow
@pytest.mark.parametrize("style", ["alpaca", "completion", "input_output"])
def test_other_styles_preprocess_with_the_expected_labels(style, tiny_model, tmp_path):
    pytest.importorskip("axolotl")
    spec, plan, tok, result, compiled = compile_dataset(style, tiny_model, tmp_path, 0.0)
    assert result.train_size == 20 and result.eval_path is None
    seconds = run_preprocess(compiled)
    print(f"axolotl preprocess ({style}, train only): {seconds:.1f}s")
    (rows,) = prepared_splits(compiled)
    assert len(rows) == result.train_size
    recs = records(result.train_path)
    answers = {r["answer"] for r in faq_frame().to_dicts()}
    for row in rows:
        trained = trained_text(tok, row)
        if style == "completion":
            assert all(lab != IGNORE for lab in row["labels"])  # raw text: every token is learned
        elif style == "input_output":
            assert trained.startswith("A: ") and trained.endswith(END) and trained[3:-len(END)] in answers
        else:
            assert trained.strip().removesuffix(END).strip() in answers  # the response, not the prompt
    assert_preview_matches_axolotl(tok, plan, recs, rows, tiny_model)


# ----------------------------------------------------------------------------- preview, fast


def test_preview_marks_assistant_turns_in_plain_text(tiny_model, tmp_path):
    pytest.importorskip("axolotl")
    spec, plan, tok, result, _ = compile_dataset("chat", tiny_model, tmp_path, 0.0)
    thread = next(r for r in records(result.train_path) if len(r["messages"]) == 5)
    (ex,) = render_examples(tiny_model, plan, [thread], 1, origins=["support.mbox:<1@acme>"])
    text = ex.plain()
    assert "[[Sorry! Please send the order number.<|im_end|>]]" in text
    assert "[[Thank you. It ships on Monday.<|im_end|>]]" in text
    assert "[[" not in text.split("assistant\n", 1)[0]  # system and first user turn are not trained
    assert ex.marks_from == "axolotl" and ex.origin == "support.mbox:<1@acme>" and not ex.dropped
    assert ex.n_trained == len(tok("Sorry! Please send the order number.", add_special_tokens=False)["input_ids"]) \
        + len(tok("Thank you. It ships on Monday.", add_special_tokens=False)["input_ids"]) + 2
    assert ex.to_dict()["trained_tokens"] == ex.n_trained
    assert str(ex.rich()) == "".join(t for t, _ in ex.spans)


def test_preview_without_axolotl_shows_unmarked_text(tiny_model, tmp_path, monkeypatch):
    import llmspec.runtime.train.axolotl_check as check

    spec, plan, tok, result, _ = compile_dataset("chat", tiny_model, tmp_path, 0.0)
    monkeypatch.setattr(check, "axolotl_available", lambda: False)
    (ex,) = render_examples(tiny_model, plan, records(result.train_path)[:1], 1)
    assert ex.marks_from == "none" and ex.labels is None and "[[" not in ex.plain()
    assert "<|im_start|>assistant\n" in ex.plain()

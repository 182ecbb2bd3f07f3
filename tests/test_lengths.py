"""Token-exact lengths: the plan's examples and tokens are what Axolotl trains on, over-length
examples rejected (``too_long``) or truncated by llmspec, never dropped by Axolotl unseen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from llmspec.compiler.formatting import compile_format
from llmspec.runtime.dataset.build import build_dataset
from llmspec.runtime.dataset.lengths import RULE_TOO_LONG, length_check
from llmspec.spec.models import FormatSpec, SplitSpec

SHORT, LONG = 12, 5
SEQUENCE_LEN = 64


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    from llmspec.runtime.models.tinymodel import resolve_builtin

    return str(resolve_builtin("builtin:tiny", cache_dir=tmp_path_factory.mktemp("cache")))


def _rows() -> list[dict]:
    short = [{"question": f"Where is order {i}?", "answer": f"It ships on day {i}."} for i in range(SHORT)]
    long = [{"question": f"Tell me everything about plan {i}.",
             "answer": " ".join(f"Plan {i} includes feature number {k} with all its details." for k in range(12))}
            for i in range(LONG)]
    return short + long


def _check(tiny: str, policy: str, style: str = "chat", mapping: dict | None = None):
    from llmspec.runtime.dataset.preview import load_tokenizer

    plan = compile_format(FormatSpec(style=style, map={"s": mapping or {"user": "question", "assistant": "answer"}}))
    return plan, length_check(load_tokenizer(tiny), plan, sequence_len=SEQUENCE_LEN,
                              chat_template="tokenizer_default", policy=policy)


def test_reject_counts_too_long_and_truncate_fits(tiny, tmp_path):
    pytest.importorskip("axolotl")
    frame = pl.DataFrame(_rows()).with_row_index("_origin").with_columns(pl.col("_origin").cast(pl.String))
    plan, check = _check(tiny, "reject")
    rejected = build_dataset({"s": frame}, plan, SplitSpec(eval_fraction=0.0), tmp_path / "r", lengths=check)
    assert rejected.train_size == SHORT and rejected.rejected_by_rule() == {RULE_TOO_LONG: LONG}
    assert set(rejected.rejects["rule"]) == {RULE_TOO_LONG}
    assert "over training.sequence_len 64" in rejected.rejects["message"][0]
    assert max(rejected.token_counts["train"]) <= SEQUENCE_LEN

    plan, check = _check(tiny, "truncate")
    cut = build_dataset({"s": frame}, plan, SplitSpec(eval_fraction=0.0), tmp_path / "t", lengths=check)
    assert cut.train_size == SHORT + LONG and cut.rejected_by_rule() == {}
    assert cut.per_source["s"].truncated == LONG
    assert max(cut.token_counts["train"]) <= SEQUENCE_LEN
    # truncation keeps the longest prefix that fits: one more word would not
    records = [json.loads(x) for x in cut.train_path.read_text().splitlines()]
    answers = [r["messages"][-1]["content"] for r in records if r["messages"][0]["content"].startswith("Tell")]
    assert len(answers) == LONG and all(a and "Plan" in a for a in answers)
    for record, n in zip(records, cut.token_counts["train"]):
        assert check.measure(record)[0] == n


def test_prompt_alone_too_long_is_rejected_even_when_truncating(tiny, tmp_path):
    pytest.importorskip("axolotl")
    frame = pl.DataFrame({"question": ["word " * 80, "Short?"], "answer": ["Yes.", "Fine."], "_origin": ["a", "b"]})
    plan, check = _check(tiny, "truncate")
    result = build_dataset({"s": frame}, plan, SplitSpec(eval_fraction=0.0), tmp_path, lengths=check)
    assert result.rejected_by_rule() == {RULE_TOO_LONG: 1}
    assert "no room for a trained token" in result.rejects["message"][0]
    assert result.token_counts["train"] == [check.measure(json.loads(result.train_path.read_text()))[0]]


SPEC = """llmspec: 1
project: lengths
base_model: {{id: builtin:tiny}}
sources:
  faq: {{path: faq.jsonl, format: jsonl, columns: {{question: str, answer: str}}}}
format:
  style: chat
  too_long: {policy}
  map:
    faq: {{user: question, assistant: answer}}
split: {{eval_fraction: 0.2, seed: 1}}
training:
  method: lora
  hardware: cpu
  sequence_len: 64
  batch: {{micro: 2, accumulate: 2}}
  epochs: 1
"""


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["reject", "truncate"])
def test_plan_report_and_axolotl_preprocess_agree(policy, tmp_path, monkeypatch):
    pytest.importorskip("axolotl")
    from datasets import load_from_disk

    from llmspec.api import load_spec
    from llmspec.commands.compile import compile_project
    from llmspec.runtime.reports.writer import dataset_report

    (tmp_path / "faq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()), encoding="utf-8")
    spec = tmp_path / "llmspec.yaml"
    spec.write_text(SPEC.format(policy=policy), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    plan = compile_project(spec, out, n_examples=0)
    est, ds = plan["estimates"], plan["dataset"]
    kept = SHORT if policy == "reject" else SHORT + LONG
    assert est["examples"]["train"] + est["examples"]["eval"] == kept
    assert ds["rejected"] == ({RULE_TOO_LONG: LONG} if policy == "reject" else {})
    assert est["tokens"]["method"] == "tokenizer" and est["tokens"]["over_sequence_len"] == 0
    assert est["steps"]["per_epoch"] == -(-(-(-est["examples"]["train"] // 2)) // 2)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled",
           "DO_NOT_TRACK": "1", "AXOLOTL_DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    config = Path(plan["training"]["config_path"])
    proc = subprocess.run(["axolotl", "preprocess", str(config)], env=env, cwd=config.parent, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    prepared = Path(plan["training"]["config"]["dataset_prepared_path"])
    splits = [load_from_disk(str(d)).to_list() for d in sorted(prepared.iterdir()) if d.is_dir()]
    # Axolotl's own count and token total, train and eval together, equal the plan's
    assert sorted(len(rows) for rows in splits) == sorted([est["examples"]["train"], est["examples"]["eval"]])
    assert sum(len(r["input_ids"]) for rows in splits for r in rows) == est["tokens"]["train"] + est["tokens"]["eval"]
    assert "Dropped" not in proc.stdout + proc.stderr

    loaded = load_spec(spec)
    report = dataset_report(out / "data", style=loaded.spec.format.style,
                            chat_template=loaded.spec.base_model.chat_template)
    assert report["token_lengths_basis"] == "axolotl" and report["train"] == est["examples"]["train"]
    assert sum(report["token_lengths"]) == est["tokens"]["train"] and max(report["token_lengths"]) <= 64

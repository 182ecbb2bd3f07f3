"""KTO and ORPO end to end on builtin:tiny on the CPU. KTO: labelled answers from a declared source, prompts
written through the chat template by the dataset stage, trained by Axolotl's KTO trainer.
(DPO runs end to end in tests/test_feedback_e2e.py.)"""

from __future__ import annotations

import json

import pytest

from deploy_project import llmspec

pytestmark = pytest.mark.slow

SPEC = """\
llmspec: 1
project: kto-bot
base_model: {id: builtin:tiny}
sources:
  rated: {path: data/rated.jsonl, format: jsonl, columns: {question: str, answer: str, verdict: str}}
format:
  style: chat
  system: You are Acme's support assistant.
  map:
    rated: {user: question, assistant: answer, label: verdict}
split: {eval_fraction: 0.0}
training:
  method: kto
  learning_rate: 0.001
  max_steps: 2
  sequence_len: 128
  batch: {micro: 4, accumulate: 1}
  hardware: cpu
acceptance:
  max_new_tokens: 8
  tests:
    - {name: answers-something, prompt: How do I reset my router?, expect: [{max_chars: 2000}]}
"""

ROWS = [("How do I reset my router?", "Hold the reset button for ten seconds.", "up"),
        ("How do I reset my router?", "Buy a new router.", "down"),
        ("When will my refund arrive?", "Within five to seven business days.", "up"),
        ("When will my refund arrive?", "Never.", "down")]


def _apply(project, spec: str, data_file: str, rows: list[dict]):
    """Apply ``spec`` over ``rows`` written to data/``data_file``; the promoted run's folder."""
    (project / "data").mkdir()
    (project / "data" / data_file).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (project / "llmspec.yaml").write_text(spec)
    llmspec(["apply", "llmspec.yaml", "--yes"], project)
    state = json.loads((project / ".llmspec/state.json").read_text())
    return project / ".llmspec/runs" / state["promoted"]["run"]


def test_kto_trains_on_labelled_answers(tmp_path):
    run_dir = _apply(tmp_path, SPEC, "rated.jsonl",
                     [{"question": q, "answer": a, "verdict": v} for q, a, v in ROWS])
    lines = [json.loads(x) for x in (run_dir / "dataset/train.jsonl").read_text().splitlines()]
    assert sorted(line["label"] for line in lines) == [False, False, True, True]
    assert all(line["prompt"].endswith("<|im_start|>assistant\n") for line in lines)
    config = (run_dir / "train/axolotl.yaml").read_text()
    assert "rl: kto" in config and "remove_unused_columns: false" in config
    report = json.loads((run_dir / "report.json").read_text())
    # TRL's KTO trainer logged its own metrics: the KL term and the rewards of each side
    assert report["training"]["rl"] == "kto" and "rewards/chosen" in report["training"]["preference"]
    assert "'kl'" in (run_dir / "train/train.log").read_text()


ORPO_SPEC = SPEC.replace("project: kto-bot", "project: orpo-bot").replace(
    "rated: {path: data/rated.jsonl, format: jsonl, columns: {question: str, answer: str, verdict: str}}",
    "pairs: {path: data/pairs.jsonl, format: jsonl, columns: {question: str, good: str, bad: str}}").replace(
    "rated: {user: question, assistant: answer, label: verdict}",
    "pairs: {user: question, chosen: good, rejected: bad}").replace("method: kto", "method: orpo")


def test_orpo_trains_on_pairs(tmp_path):
    pairs = [(ROWS[i][0], ROWS[i][1], ROWS[i + 1][1]) for i in (0, 2)] * 2
    run_dir = _apply(tmp_path, ORPO_SPEC, "pairs.jsonl",
                     [{"question": q, "good": g, "bad": b} for q, g, b in pairs])
    config = (run_dir / "train/axolotl.yaml").read_text()
    assert "rl: orpo" in config and "chat_template.argilla" in config
    report = json.loads((run_dir / "report.json").read_text())
    # TRL's ORPO trainer logged its own metrics: the odds-ratio term beside the chosen answers' NLL
    assert report["training"]["rl"] == "orpo"
    log = (run_dir / "train/train.log").read_text()
    assert "log_odds_ratio" in log and "nll_loss" in log

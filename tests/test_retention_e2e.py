"""Retention end to end on a real pretrained model (SmolLM2-135M-Instruct) on the CPU: an apply
with retention and replay on promotes and reports both; a spec that forgets (a very high
learning rate) fails the retention gate, exits 3 and keeps the earlier promotion.

Kept small so each apply trains about a minute on 2 cores: 6 and 4 LoRA steps of 4 examples, a
retention suite of 8 prompts, 6 replay prompts. The model's GGUF is converted once into the
machine-wide cache (`~/.cache/llmspec`, ~30 s the first time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LLMSPEC = [sys.executable, "-m", "llmspec.cli"]

SPEC = """\
llmspec: 1
project: retention-e2e
base_model: {id: builtin:smollm2-135m-instruct}
sources:
  tickets:
    path: data/tickets.jsonl
    format: jsonl
    columns: {question: str, answer: str}
quality:
  rules:
    - drop_corrupt: {}
    - require: {columns: [question, answer]}
    - dedupe: {columns: [question], method: exact}
format:
  style: chat
  system: You are Acme's support assistant.
  map:
    tickets: {user: question, assistant: answer}
split: {eval_fraction: 0.1, seed: 1}
training:
  method: lora
  learning_rate: LR
  max_steps: STEPS
  sequence_len: 128
  batch: {micro: 4, accumulate: 1}
  lora: {r: 8, alpha: 16, dropout: 0.0}
  warmup: {steps: 0}
  hardware: cpu
  replay: {from: base_model, prompts: replay.jsonl, fraction: 0.2, max_new_tokens: 32}
acceptance:
  max_new_tokens: 24
  tests:
    - {name: answers-something, prompt: How do I reset my router?, expect: [{max_chars: 2000}]}
  gates:
    pass_rate: ">= 0.5"
  retention: {suite: general.jsonl, max_drop: MAX_DROP, max_new_tokens: 16}
"""

GENERAL = [  # each answered right by the base model with this system prompt (greedy, 16 tokens)
    ("capital-japan", "What is the capital of Japan?", "Tokyo", "facts"),
    ("capital-uk", "What is the capital of the United Kingdom?", "London", "facts"),
    ("capital-china", "What is the capital of China?", "Beijing", "facts"),
    ("capital-russia", "What is the capital of Russia?", "Moscow", "facts"),
    ("red-planet", "Which planet is known as the Red Planet?", "Mars", "facts"),
    ("days-week", "How many days are there in a week?", "(7|seven)", "facts"),
    ("sky-color", "What color is the sky on a clear day?", "blue", "facts"),
    ("largest-ocean", "What is the largest ocean on Earth?", "Pacific", "facts"),
]
REPLAY = ["What is the capital of Sweden?", "Why do leaves change color in autumn?", "What do pandas eat?",
          "How do I boil an egg?", "Name three musical instruments.", "What is 7 + 6?"]


def run(args, cwd, check=True, timeout=1800):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(LLMSPEC + args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"llmspec {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_spec(project: Path, *, lr: str, steps: int, max_drop: float) -> None:
    text = SPEC.replace("LR", lr).replace("STEPS", str(steps)).replace("MAX_DROP", str(max_drop))
    (project / "llmspec.yaml").write_text(text)


def state(project: Path) -> dict:
    return json.loads((project / ".llmspec/state.json").read_text())


def report(project: Path, run_id: str) -> dict:
    return json.loads((project / ".llmspec/runs" / run_id / "report.json").read_text())


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    project = tmp_path_factory.mktemp("retention")
    (project / "data").mkdir()
    lines = (REPO / "examples/support-bot/data/tickets.jsonl").read_bytes().splitlines(keepends=True)[:80]
    (project / "data/tickets.jsonl").write_bytes(b"".join(lines))
    (project / "general.jsonl").write_text("".join(
        json.dumps({"name": n, "prompt": p, "expect": [{"regex": f"(?i)\\b{a}\\b"}], "tags": [t]}) + "\n"
        for n, p, a, t in GENERAL))
    (project / "replay.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in REPLAY))
    write_spec(project, lr="1.0e-3", steps=6, max_drop=0.25)
    plan = run(["plan", "llmspec.yaml"], project)
    proc = run(["apply", "llmspec.yaml", "--yes"], project)
    return project, plan, proc


def test_apply_with_retention_and_replay_promotes(applied):
    project, plan, proc = applied
    assert "retention: on" in plan.stdout and "replay: 20% of the training set" in plan.stdout
    assert "model" in plan.stdout and "replay" in plan.stdout
    last = state(project)["runs"][-1]
    assert last["outcome"] == "promoted", proc.stdout
    assert {"model", "replay", "dataset", "train", "acceptance"} <= set(last["built"])
    rep = report(project, last["run"])
    ret = rep["acceptance"]["retention"]
    assert ret["enabled"] and ret["tests"] == len(GENERAL) and ret["by_tag"]["facts"]["tests"] == len(GENERAL)
    assert ret["base_pass_rate"] >= 0.75  # the base model knows these
    assert ret["drift"]["tokens"] > 0 and ret["drift"]["base_nll"] > 0
    assert any(g["name"] == "retention" and g["passed"] for g in rep["acceptance"]["gates"])
    assert "Retention (general.jsonl)" in proc.stdout
    # Replay: generated, counted in the funnel, in the train split only.
    run_dir = project / ".llmspec/runs" / last["run"]
    ds = json.loads((run_dir / "dataset" / "dataset.json").read_text())
    funnel = ds["per_source"]["replay"]
    assert funnel["examples"] > 0 and funnel["rows_in"] == funnel["examples"] + sum(funnel["rejected"].values())
    origins = [json.loads(x) for x in (run_dir / "dataset" / "origins.jsonl").read_text().splitlines()]
    assert {o["split"] for o in origins if o["source"] == "replay"} == {"train"}
    assert "general" not in (run_dir / "dataset" / "eval.jsonl").read_text()
    junit = (run_dir / "acceptance.junit.xml").read_text()
    assert 'testsuite name="retention-e2e.retention"' in junit


def test_forgetting_fails_the_retention_gate_and_keeps_the_promotion(applied):
    project, _, _ = applied
    promoted = state(project)["promoted"]["run"]
    write_spec(project, lr="0.05", steps=4, max_drop=0.05)
    proc = run(["apply", "llmspec.yaml", "--yes"], project, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "FAILED gate retention" in proc.stdout
    now = state(project)
    assert now["promoted"]["run"] == promoted
    last = now["runs"][-1]
    assert last["outcome"] == "gates_failed"
    # Only training and what follows reran: the conversion and the replay answers were reused.
    assert {"model", "replay"} <= set(last["reused"])
    ret = report(project, last["run"])["acceptance"]["retention"]
    assert ret["drop"] > 0.05 and ret["lost"] and ret["drift"]["delta"] > 0

"""The replay stage in the executable plan, on builtin:tiny without training: the base model's
answers are generated once as their own stage, mixed into the train split only and counted in
the funnel; reused while unchanged, regenerated when the prompts or the base model change, and
a change of `fraction` only rebuilds the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from project_state import make_project, no_axolotl_check  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_axolotl_check")

REPLAY = "  replay: {from: base_model, prompts: prompts.jsonl, fraction: 0.25, max_new_tokens: 64}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    spec = make_project(tmp_path)
    text = spec.read_text().replace("training: {epochs: 1, hardware: cpu}\n",
                                    "training:\n  epochs: 1\n  hardware: cpu\n  sequence_len: 256\n" + REPLAY)
    spec.write_text(text)
    write_prompts(tmp_path, 8)
    return spec


def write_prompts(folder: Path, n: int) -> None:
    (folder / "prompts.jsonl").write_text("".join(json.dumps({"prompt": f"General question {i}?"}) + "\n"
                                                  for i in range(n)))


def compile_dataset(spec: Path):
    from llmspec.api import make_plan, run_stages

    report = make_plan(spec, for_apply=True)
    executor = run_stages(report, ["dataset"], label="test")
    return report, executor


def test_replay_is_a_stage_mixed_into_train_only(project: Path):
    report, executor = compile_dataset(project)
    stage = report.plan.stage("replay")
    assert report.plan.stage("dataset").inputs[-1] == "replay"
    assert stage.config["prompts_sha256"]  # the user's prompts file, by content
    assert any(n.startswith("replay: 25% of the training set") for n in report.plan.notes)
    replay_dir = executor.stage_dir("replay")
    summary = json.loads((replay_dir / "replay.json").read_text())
    assert summary["prompts"] == 8 and summary["examples"] + sum(summary["rejected"].values()) == 8
    ds = executor.stage_dir("dataset")
    meta = json.loads((ds / "dataset.json").read_text())
    funnel = meta["per_source"]["replay"]
    assert funnel["rows_in"] == summary["examples"]
    assert funnel["rows_in"] == funnel["examples"] + sum(funnel["rejected"].values())
    domain = meta["per_source"]["qa"]["examples"]
    assert meta["train_size"] + meta["eval_size"] == domain + funnel["examples"]
    origins = [json.loads(x) for x in (ds / "origins.jsonl").read_text().splitlines()]
    replayed = [o for o in origins if o["source"] == "replay"]
    assert len(replayed) == funnel["examples"] > 0 and {o["split"] for o in replayed} == {"train"}
    assert all(isinstance(o.get("tokens"), int) for o in replayed)  # measured like the rest
    assert "General question" not in (ds / "eval.jsonl").read_text()
    train = [json.loads(x) for x in (ds / "train.jsonl").read_text().splitlines()]
    assert sum("General question" in json.dumps(r) for r in train) == funnel["examples"]
    assert meta["tokens"]["train"] == sum(o["tokens"] for o in origins if o["split"] == "train")


def test_replay_is_reused_until_its_prompts_or_base_model_change(project: Path):
    _, first = compile_dataset(project)
    replay_dir = first.stage_dir("replay")
    # A new fraction: the dataset is drawn again, the answers are not regenerated.
    project.write_text(project.read_text().replace("fraction: 0.25", "fraction: 0.4"))
    report, second = compile_dataset(project)
    actions = {s.id: s.action for s in report.diff.stages}
    assert actions["replay"] == "unchanged" and actions["dataset"] != "unchanged"
    assert second.stage_dir("replay") == replay_dir
    # New prompts: regenerated.
    write_prompts(project.parent, 9)
    report, third = compile_dataset(project)
    assert {s.id: s.action for s in report.diff.stages}["replay"] != "unchanged"
    assert third.stage_dir("replay") != replay_dir
    assert json.loads((third.stage_dir("replay") / "replay.json").read_text())["prompts"] == 9


def test_replay_fingerprint_follows_the_base_model_content(project: Path):
    from llmspec.api import compile_plan, load_spec
    from llmspec.compiler.plan import build_plan

    loaded = load_spec(project)
    plan = compile_plan(loaded, {"qa": {"data/qa.jsonl": "0" * 64}})
    other = build_plan(loaded.spec, spec_path=plan.spec_path, base_dir=plan.base_dir, source_files=plan.source_files,
                       base_model_fingerprint="another-model-content")
    assert plan.stage("replay").fingerprint != other.stage("replay").fingerprint
    assert plan.stage("sources.qa").fingerprint == other.stage("sources.qa").fingerprint


def test_a_changed_builtin_prompt_set_regenerates_replay(project: Path):
    """A built-in prompt set is hashed by content too: a new llmspec that ships a changed
    general-replay-v1 makes new replay answers instead of keeping stale ones."""
    import hashlib

    from llmspec.api import compile_plan, load_spec
    from llmspec.compiler.plan import build_plan
    from llmspec.runtime.acceptance.retention import builtin_file

    project.write_text(project.read_text().replace("prompts: prompts.jsonl", "prompts: builtin:general-replay-v1"))
    loaded = load_spec(project)
    plan = compile_plan(loaded, {"qa": {"data/qa.jsonl": "0" * 64}})
    packaged = hashlib.sha256(builtin_file("builtin:general-replay-v1").read_bytes()).hexdigest()
    assert plan.stage("replay").config["prompts_sha256"] == packaged
    changed = build_plan(loaded.spec, spec_path=plan.spec_path, base_dir=plan.base_dir,
                         source_files=plan.source_files, base_model_fingerprint=plan.base_model["fingerprint"],
                         builtin_hashes={"builtin:general-replay-v1": "f" * 64})
    assert changed.stage("replay").fingerprint != plan.stage("replay").fingerprint

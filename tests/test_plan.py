"""The Plan and its diff: pure compilation, no data read, no training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmspec.compiler.diff import diff_plan
from llmspec.compiler.plan import Plan, build_plan, metadata_of
from llmspec.compiler.render import render_json, render_markdown, render_text
from llmspec.spec.load import check_spec

SPEC = """\
llmspec: 1
project: demo
description: first
base_model: {id: builtin:tiny}
sources:
  tickets: {path: data/t.jsonl, format: jsonl, columns: {question: str, answer: str}}
  faq: {path: data/f.jsonl, format: jsonl, columns: {question: str, answer: str}}
quality:
  rules:
    - require: {columns: [question, answer]}
    - dedupe: {columns: [question], method: exact, sources: [tickets]}
format:
  style: chat
  map:
    tickets: {user: question, assistant: answer}
    faq: {user: question, assistant: answer}
training: {learning_rate: 0.0002, epochs: 2, hardware: cpu}
acceptance:
  tests:
    - {name: refund, prompt: Can I get a refund?, expect: [{contains: 30 days}]}
"""
HASHES = {"tickets": {"data/t.jsonl": "a" * 64}, "faq": {"data/f.jsonl": "b" * 64}}


def compile_text(tmp_path: Path, text: str, hashes=HASHES) -> tuple[Plan, dict]:
    path = tmp_path / "llmspec.yaml"
    path.write_text(text)
    loaded = check_spec(path)
    assert not loaded.errors, [d.render() for d in loaded.errors]
    plan = build_plan(loaded.spec, spec_path="llmspec.yaml", source_files=hashes,
                      base_model_fingerprint="builtin:tiny@1")
    return plan, metadata_of(loaded.spec)


def previous_of(plan: Plan) -> dict:
    return {s.id: {"fingerprint": s.fingerprint, "config": s.config} for s in plan.stages}


def actions(diff) -> dict[str, str]:
    return {s.id: s.action for s in diff.stages}


def test_stages_in_dependency_order(tmp_path):
    plan, _ = compile_text(tmp_path, SPEC)
    assert [s.id for s in plan.stages] == [
        "sources.tickets", "sources.faq", "clean.tickets", "clean.faq", "dataset", "train", "acceptance", "promote"]
    assert plan.stage("clean.tickets").inputs == ("sources.tickets",)
    # the dedupe rule is scoped to tickets: faq's cleaning config does not contain it
    assert [r["kind"] for r in plan.stage("clean.faq").config["rules"]] == ["require"]


def test_nothing_built_means_everything_new(tmp_path):
    plan, _ = compile_text(tmp_path, SPEC)
    diff = diff_plan(plan, None, baseline="none")
    assert set(actions(diff).values()) == {"new"}
    assert diff.summary() == "Plan: 5 to rebuild, 1 to retrain, 1 to re-test, 1 to promote, 0 unchanged."
    assert diff.has_changes


def test_reformatting_and_reordering_change_nothing(tmp_path):
    plan, _ = compile_text(tmp_path, SPEC)
    reformatted = SPEC.replace("training: {learning_rate: 0.0002, epochs: 2, hardware: cpu}",
                               "training:\n  hardware: cpu   # comment\n  epochs: 2\n  learning_rate: 2.0e-4\n")
    plan2, _ = compile_text(tmp_path, reformatted)
    assert plan2.fingerprints == plan.fingerprints
    diff = diff_plan(plan2, previous_of(plan), baseline="state")
    assert set(actions(diff).values()) == {"unchanged"}
    assert not diff.has_changes


def test_learning_rate_retrains_but_does_not_reclean(tmp_path):
    plan, meta = compile_text(tmp_path, SPEC)
    plan2, _ = compile_text(tmp_path, SPEC.replace("learning_rate: 0.0002", "learning_rate: 0.0003"))
    diff = diff_plan(plan2, previous_of(plan), baseline="state")
    a = actions(diff)
    assert a["clean.tickets"] == a["clean.faq"] == a["dataset"] == "unchanged"
    assert a["train"] == a["acceptance"] == a["promote"] == "change"
    train = next(s for s in diff.stages if s.id == "train")
    assert [c.render() for c in train.changes] == ["training.learning_rate: 0.0002 -> 0.0003"]
    acceptance = next(s for s in diff.stages if s.id == "acceptance")
    assert [(r.code, r.message, r.stage) for r in acceptance.reasons] == [
        ("input-changed", "upstream train changed", "train")]
    assert train.codes == ["config-changed"]
    assert diff.summary() == "Plan: 1 to retrain, 1 to re-test, 1 to promote, 5 unchanged."


def test_rule_edit_recleans_only_that_source_and_retrains(tmp_path):
    plan, _ = compile_text(tmp_path, SPEC)
    plan2, _ = compile_text(tmp_path, SPEC.replace("method: exact", "method: fingerprint"))
    a = actions(diff_plan(plan2, previous_of(plan), baseline="state"))
    assert a["clean.tickets"] == "change" and a["clean.faq"] == "unchanged"
    assert a["dataset"] == a["train"] == "change"
    assert a["sources.tickets"] == "unchanged"


def test_data_change_is_shown_per_file(tmp_path):
    plan, _ = compile_text(tmp_path, SPEC)
    hashes = {**HASHES, "faq": {"data/f.jsonl": "c" * 64}}
    plan2, _ = compile_text(tmp_path, SPEC, hashes)
    diff = diff_plan(plan2, previous_of(plan), baseline="state")
    faq = next(s for s in diff.stages if s.id == "sources.faq")
    assert [c.render() for c in faq.changes] == [f"sources.faq.files.data/f.jsonl: {'b' * 12} -> {'c' * 12}"]
    assert actions(diff)["clean.tickets"] == "unchanged"


def test_metadata_only_edits_change_no_stage(tmp_path):
    plan, meta = compile_text(tmp_path, SPEC)
    edited = SPEC.replace("description: first", "description: second").replace("name: refund", "name: refunds")
    plan2, meta2 = compile_text(tmp_path, edited)
    diff = diff_plan(plan2, previous_of(plan), baseline="state", metadata_old=meta, metadata_new=meta2)
    assert set(actions(diff).values()) == {"unchanged"}
    assert [m.render() for m in diff.metadata] == ["description: first -> second",
                                                   "acceptance.tests[refund]: renamed to refunds"]
    assert "Metadata only" in render_text(diff, None, project="demo")


def test_removed_source_is_shown(tmp_path):
    plan, _ = compile_text(tmp_path, SPEC)
    two = SPEC.replace("  faq: {path: data/f.jsonl, format: jsonl, columns: {question: str, answer: str}}\n", "")
    two = two.replace("    faq: {user: question, assistant: answer}\n", "")
    plan2, _ = compile_text(tmp_path, two, {"tickets": HASHES["tickets"]})
    a = actions(diff_plan(plan2, previous_of(plan), baseline="state"))
    assert a["sources.faq"] == a["clean.faq"] == "removed"
    assert a["dataset"] == "change"


def test_lockfile_baseline_without_configs(tmp_path):
    plan, _ = compile_text(tmp_path, SPEC)
    plan2, _ = compile_text(tmp_path, SPEC.replace("epochs: 2", "epochs: 3"))
    previous = {s.id: {"fingerprint": s.fingerprint, "config": None} for s in plan.stages}
    diff = diff_plan(plan2, previous, baseline="llmspec.lock")
    train = next(s for s in diff.stages if s.id == "train")
    assert train.action == "change" and train.codes == ["fingerprint-changed"]
    assert "fingerprints only" in train.reasons[0].message


def test_renderings(tmp_path):
    plan, _ = compile_text(tmp_path, SPEC)
    plan2, _ = compile_text(tmp_path, SPEC.replace("learning_rate: 0.0002", "learning_rate: 0.0003"))
    diff = diff_plan(plan2, previous_of(plan), baseline="state")
    text = render_text(diff, {"examples": 100, "steps": 26, "steps_per_epoch": 13}, project="demo")
    assert "  ~ train  (retrain)" in text and "training.learning_rate: 0.0002 -> 0.0003" in text
    assert "  = clean.tickets" in text
    md = render_markdown(diff, None, project="demo")
    assert "| 🟡 | `train` | retrain |" in md
    data = json.loads(render_json(diff, None, project="demo"))
    assert data["format_version"] == 2 and data["counts"]["retrain"] == 1
    stages = {s["id"]: s for s in data["stages"]}
    assert stages["train"]["action"] == "change" and stages["train"]["kind"] == "train"
    assert stages["train"]["reasons"] == [{"code": "config-changed", "message": "its config changed"}]
    assert stages["train"]["changes"] == [{"path": "training.learning_rate", "op": "changed", "old": 0.0002,
                                           "new": 0.0003}]
    assert stages["acceptance"]["reasons"] == [{"code": "input-changed", "message": "upstream train changed",
                                                "stage": "train"}]


def test_plan_roundtrips_through_json(tmp_path):
    plan, _ = compile_text(tmp_path, SPEC)
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again.fingerprints == plan.fingerprints
    assert again.stage("train").spec_path == ("training",)


@pytest.mark.parametrize("edit,retrains", [
    (("epochs: 2", "epochs: 2\n  seed: 7"), True),
    (("hardware: cpu", "hardware: {type: cpu}"), False),   # two spellings of one value
])
def test_equivalent_or_real_edits(tmp_path, edit, retrains):
    plan, _ = compile_text(tmp_path, SPEC)
    new_text = SPEC.replace("training: {learning_rate: 0.0002, epochs: 2, hardware: cpu}",
                            "training:\n  learning_rate: 0.0002\n  epochs: 2\n  hardware: cpu\n").replace(*edit)
    plan2, _ = compile_text(tmp_path, new_text)
    assert (plan2.stage("train").fingerprint != plan.stage("train").fingerprint) is retrains


def test_cpu_time_estimates_count_axolotl_start_up_and_gpu_rows_do_not():
    from llmspec.compiler.estimates import CPU_STARTUP_SECONDS, _time_by_class

    cpu = _time_by_class(6700.0 * 10, "cpu", "lora", 205_120, 1)["cpu-2-cores"]
    assert cpu["train_seconds"] == pytest.approx(10.0, rel=0.01)
    assert cpu["startup_seconds"] == CPU_STARTUP_SECONDS
    assert cpu["seconds"] == pytest.approx(10.0 + CPU_STARTUP_SECONDS, rel=0.01) and cpu["human"] == "32s"
    gpu = _time_by_class(1e6, "cuda", "lora", 1_800_000_000, 1)["a100-80gb"]
    assert "startup_seconds" not in gpu and gpu["seconds"] == gpu["train_seconds"]

"""Retention without a model: the suite files, the drift figure, the per-tag figures, the
lost prompts and the gates; the spec's defaults and checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmspec.runtime.acceptance.assertions import evaluate_test
from llmspec.runtime.acceptance.gates import evaluate_retention_gates
from llmspec.runtime.acceptance.retention import (
    RetentionResult, builtin_file, drift_of, load_retention_suite)
from llmspec.runtime.acceptance.runner import TestRun
from llmspec.runtime.replay.build import load_prompts
from llmspec.spec.checks import BUILTIN_PROMPT_SETS, BUILTIN_SUITES
from llmspec.spec.load import check_spec
from llmspec.spec.models import GENERAL_SUITE, GENERAL_SUITE_TAGS, RetentionSpec


SUITES = ("builtin:general-v2", "builtin:general-v1")


def _suite(name: str = GENERAL_SUITE):
    return load_retention_suite(name, Path("."), system="You are helpful.", max_new_tokens=48)


@pytest.mark.parametrize("name", SUITES)
def test_general_suite_has_100_prompts_in_every_area(name):
    # Only prompts SmolLM2-135M-Instruct was run on and passed (greedy, with and without a system
    # prompt; v2: and 4 of 4 sampled answers) are kept: tests/test_general_suite.py runs a sample.
    tests = _suite(name)
    assert len(tests) >= 100
    assert all(len(t.tags) == 1 and t.tags[0] in GENERAL_SUITE_TAGS for t in tests)
    # v2 has no safety area: the base model declines "Can you help me ...?" greedily but never in
    # 4 of 4 sampled answers (0 of the 42 it declined greedily), so a refusal cannot be told from
    # noise there; v1 keeps its 21.
    areas = [tag for tag in GENERAL_SUITE_TAGS if not (name.endswith("v2") and tag == "safety")]
    by_tag = {tag: sum(t.tags[0] == tag for t in tests) for tag in GENERAL_SUITE_TAGS}
    assert min(by_tag[tag] for tag in areas) >= 8, by_tag
    assert len({t.name for t in tests}) == len(tests)
    assert all(t.system == "You are helpful." and t.max_new_tokens for t in tests)


@pytest.mark.parametrize("name", SUITES)
def test_general_suite_assertions_are_not_vacuous(name):
    # Every assertion parsed (loading the suite parses them); none passes an answer that knows
    # nothing, and a safety test passes a refusal and fails an answer that complies.
    tests = _suite(name)
    blank = [t.name for t in tests if evaluate_test(t.expectations, "I am not sure.", prompt=t.prompt).passed]
    assert not blank
    refusal = "I'm sorry, but I can't help with that."
    compliance = "Sure! Here's how to do it:\n1. Get the materials.\n2. Follow these steps."
    for test in (t for t in tests if t.tags[0] == "safety"):
        assert evaluate_test(test.expectations, refusal, prompt=test.prompt).passed, test.name
        assert not evaluate_test(test.expectations, compliance, prompt=test.prompt).passed, test.name
        # An apology that goes on to give the steps is compliance, not a refusal.
        assert not evaluate_test(test.expectations, "Sorry to hear that. Step 1: buy", prompt=test.prompt).passed


def test_builtin_names_in_spec_and_runtime_agree():
    for name in (*BUILTIN_SUITES, *BUILTIN_PROMPT_SETS):
        assert builtin_file(name).is_file()


@pytest.mark.parametrize("name", SUITES)
def test_replay_prompts_are_disjoint_from_the_suite(name):
    # Replaying the suite's own prompts would let retention measure memorisation.
    def norm(text: str) -> str:
        return re.sub(r"\W+", " ", text.lower()).strip()

    suite = {norm(t.prompt) for t in _suite(name)}
    replay = [norm(p) for p in load_prompts("builtin:general-replay-v1", Path("."))]
    assert len(replay) >= 100
    assert not suite & set(replay)


def _run(name: str, passed_text: str, test) -> TestRun:
    outcome = evaluate_test(test.expectations, passed_text, prompt=test.display_prompt)
    return TestRun(name=name, prompt=test.display_prompt, output=passed_text, outcome=outcome, duration=0.0,
                   tags=test.tags)


def _result(tuned_fail: set[int], base_fail: set[int] = frozenset()) -> RetentionResult:
    from llmspec.compiler.acceptance import SuiteTest
    from llmspec.runtime.acceptance.assertions import parse_expectations

    tests = [SuiteTest(name=f"t{i}", prompt=f"q{i}", expectations=tuple(parse_expectations([{"contains": "ok"}])),
                       tags=("facts",) if i < 10 else ("safety",)) for i in range(20)]
    tuned = [_run(t.name, "no" if i in tuned_fail else "ok", t) for i, t in enumerate(tests)]
    base = [_run(t.name, "no" if i in base_fail else "ok", t) for i, t in enumerate(tests)]
    return RetentionResult("builtin:general-v1", tests, tuned, base, drift_of([(2.0, 4)] * 20, [(3.0, 4)] * 20))


def test_drop_by_tag_and_lost_prompts():
    r = _result(tuned_fail={0, 1, 12}, base_fail={12, 13})
    assert r.base_pass_rate == 0.9 and r.pass_rate == 0.85
    assert r.drop == pytest.approx(0.05)
    assert r.lost() == [0, 1] and r.gained() == [13]
    tags = r.by_tag()
    assert tags["facts"]["drop"] == pytest.approx(0.2) and tags["safety"]["drop"] == pytest.approx(-0.1)
    report = r.to_report()
    assert [x["name"] for x in report["lost"]] == ["t0", "t1"]
    assert report["lost"][0]["base_output"] == "ok" and report["lost"][0]["output"] == "no"


def test_drift_is_the_token_weighted_nll_difference():
    d = drift_of([(2.0, 4), (6.0, 2)], [(4.0, 4), (6.0, 2)])
    assert d.base_nll == pytest.approx(8 / 6) and d.tuned_nll == pytest.approx(10 / 6)
    assert d.delta == pytest.approx(2 / 6) and d.tokens == 6 and d.answers == 2
    assert drift_of([(0.0, 0)], [(0.0, 0)]).tokens == 0


def test_gate_allows_max_drop_and_blocks_beyond_it():
    spec = RetentionSpec()
    ok = evaluate_retention_gates(spec, _result(tuned_fail={0}))  # drop 0.05
    assert [g.name for g in ok] == ["retention"] and ok[0].passed
    assert "facts 9/10 (base 10)" in ok[0].message
    bad = evaluate_retention_gates(spec, _result(tuned_fail={0, 1}))  # drop 0.10
    assert not bad[0].passed and bad[0].blocking and bad[0].value == pytest.approx(0.1)


def test_gates_per_tag_drift_and_severity():
    spec = RetentionSpec(max_drop=0.5, max_drop_by_tag={"facts": 0.0, "safety": 0.1}, max_drift=0.1,
                         severity="warn")
    gates = {g.name: g for g in evaluate_retention_gates(spec, _result(tuned_fail={0}))}
    assert gates["retention"].passed
    assert not gates["retention_by_tag:facts"].passed and gates["retention_by_tag:safety"].passed
    # Base answers cost 0.5 nats/token under the base, 0.75 under the tuned model: drift 0.25.
    assert not gates["retention_drift"].passed and gates["retention_drift"].value == pytest.approx(0.25)
    assert not any(g.blocking for g in gates.values())  # severity warn reports only


SPEC = """\
llmspec: 1
project: demo
base_model: {id: MODEL}
sources:
  qa: {path: data/qa.jsonl, format: jsonl, columns: {question: str, answer: str}}
format:
  style: chat
  map:
    qa: {user: question, assistant: answer}
"""


def _check(tmp_path, text):
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data/qa.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    (tmp_path / "llmspec.yaml").write_text(text)
    return check_spec(tmp_path / "llmspec.yaml")


def test_retention_defaults_and_off_switch(tmp_path):
    loaded = _check(tmp_path, SPEC.replace("MODEL", "builtin:smollm2-135m-instruct"))
    assert not loaded.errors
    ret = loaded.spec.acceptance.retention
    assert ret.enabled == "auto" and ret.suite == "builtin:general-v2" and ret.max_drop == 0.05
    off = _check(tmp_path, SPEC.replace("MODEL", "builtin:tiny") + "acceptance:\n  retention: false\n")
    assert off.spec.acceptance.retention.enabled is False


@pytest.mark.parametrize("extra, code", [
    ("acceptance:\n  retention: {suite: builtin:general-v9}\n", "unknown-suite"),
    ("acceptance:\n  retention: {max_drop_by_tag: {fact: 0.1}}\n", "unknown-tag"),
    ("acceptance:\n  retention: {suite: ../outside.jsonl}\n", "path-escape"),
    ("training:\n  replay: {from: nope}\n", "unknown-source"),
    ("training:\n  replay: {from: base_model, prompts: builtin:nope}\n", "unknown-suite"),
    ("training:\n  replay: {from: base_model, fraction: 1.5}\n", None),
    ("training:\n  method: dpo\n  replay: {from: base_model}\n", "replay-with-preference"),
])
def test_spec_errors(tmp_path, extra, code):
    loaded = _check(tmp_path, SPEC.replace("MODEL", "builtin:smollm2-135m-instruct") + extra)
    assert loaded.errors
    if code:
        assert code in [d.code for d in loaded.errors]


def _report_with_retention(tmp_path=None) -> dict:
    from llmspec.runtime.acceptance.gates import evaluate_retention_gates

    r = _result(tuned_fail={0, 1, 12}, base_fail={12})
    r.gates = evaluate_retention_gates(RetentionSpec(), r)
    ret = r.to_report()
    return {"project": "demo", "run": "r1", "outcome": "gates_failed",
            "acceptance": {"pass_rate": 1.0, "base_pass_rate": 0.0, "tests": [],
                           "gates": ret["gates"], "retention": ret}}


def test_reports_show_retention_beside_the_domain_rate_and_the_lost_prompts():
    from io import StringIO

    from rich.console import Console

    from llmspec.runtime.reports.html import render_html
    from llmspec.runtime.reports.markdown import render_markdown
    from llmspec.runtime.reports.terminal import print_summary

    report = _report_with_retention()
    buf = StringIO()
    print_summary(report, Console(file=buf, width=200, color_system=None))
    text = buf.getvalue()
    assert "Retention (builtin:general-v1): fine-tuned 85.0% (17/20)   base model 95.0% (19/20)" in text
    assert "LOST t0: base 'ok' -> fine-tuned 'no'" in text
    assert "FAILED gate retention drop <= 0.05" in text
    md = render_markdown(report)
    assert "### Retention" in md and "| facts | 10/10 | 8/10 | +20 pts |" in md
    assert "| q0 | ok | no |" in md
    html = render_html(report)
    assert 'id="retention"' in html and "Lost prompts" in html and "t1" in html


def test_reports_say_when_retention_is_off():
    from llmspec.runtime.reports.markdown import render_markdown
    from llmspec.runtime.reports.terminal import retention_lines

    off = {"enabled": False, "reason": "builtin:tiny is not a pretrained model: it knows nothing to retain"}
    assert retention_lines(off) == [f"Retention: off ({off['reason']})"]
    md = render_markdown({"project": "d", "acceptance": {"tests": [], "gates": [], "retention": off}})
    assert "Off: builtin:tiny is not a pretrained model" in md


def test_junit_has_a_retention_testsuite(tmp_path):
    import xml.etree.ElementTree as ET

    from llmspec.runtime.acceptance.junit import write_junit
    from llmspec.runtime.acceptance.retention import retention_junit_cases

    r = _result(tuned_fail={0, 12}, base_fail={12})
    path = write_junit(tmp_path / "a.xml", "demo.acceptance", [], extra_suites=[
        ("demo.retention", retention_junit_cases(r), {"retention.pass_rate": r.pass_rate})])
    root = ET.parse(path).getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["demo.acceptance", "demo.retention"]
    ret = suites[1]
    assert ret.get("tests") == "20" and ret.get("failures") == "1" and ret.get("skipped") == "1"
    failed = [c for c in ret.findall("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["t0"] and failed[0].get("classname") == "retention.facts"
    assert root.get("tests") == "20"


def test_tiny_plan_says_retention_is_off_and_a_real_model_plan_says_on(tmp_path):
    from llmspec.compiler.plan import build_plan

    for model, word in (("builtin:tiny", "off"), ("builtin:smollm2-135m-instruct", "on")):
        loaded = _check(tmp_path, SPEC.replace("MODEL", model))
        plan = build_plan(loaded.spec, spec_path=str(tmp_path / "llmspec.yaml"), source_files={"qa": {}})
        assert plan.stage("acceptance").config["retention"]["enabled"] is (word == "on")
        assert any(n.startswith(f"retention: {word} (") for n in plan.notes), plan.notes


def _bench(name: str = "retention"):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_model_example_has_retention_and_replay_on():
    example = Path(__file__).resolve().parents[1] / "examples" / "support-bot-smollm2"
    loaded = check_spec(example / "llmspec.yaml")
    assert not loaded.errors
    spec = loaded.spec
    assert spec.base_model.id == "builtin:smollm2-135m-instruct"
    assert spec.acceptance.retention.enabled in ("auto", True) and spec.acceptance.retention.suite == "builtin:general-v2"
    assert spec.training.replay.from_base_model and spec.training.replay.prompts == "builtin:general-replay-v1"
    # The same tickets as examples/support-bot: the two examples differ only in the model.
    assert (example / "data/tickets.jsonl").read_bytes() == (example.parent / "support-bot/data/tickets.jsonl").read_bytes()


def test_bench_writes_one_valid_spec_per_variant(tmp_path):
    bench = _bench()
    args = bench.argparse.Namespace(steps=6, lr=5e-4, rank=4, target="q_proj,v_proj", fraction=0.4,
                                    prompts="builtin:general-replay-v1")
    specs = {}
    for name, replay in (("tuned", False), ("tuned-replay", True)):
        loaded = check_spec(bench.write_project(tmp_path, name, args, replay=replay) / "llmspec.yaml")
        assert not loaded.errors, loaded.errors
        specs[name] = loaded.spec
    assert specs["tuned"].training.replay is None
    replay = specs["tuned-replay"].training.replay
    assert replay.from_base_model and replay.fraction == 0.4
    for spec in specs.values():
        t = spec.training
        assert (t.max_steps, t.learning_rate, t.lora.r, t.lora.alpha, t.lora.target) == (6, 5e-4, 4, 8, ["q_proj", "v_proj"])
        # A run that forgets must still report its figures: the bench lowers the gate to a warning.
        assert spec.acceptance.retention.severity == "warn"


def test_bench_reads_the_replay_count_from_the_dataset_funnel(tmp_path):
    # A tuned+replay row whose run mixed no replay example must not pass for a replay result.
    bench = _bench()
    assert bench.replay_rows(tmp_path) == 0
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset/dataset.json").write_text(json.dumps(
        {"per_source": {"tickets": {"rows_in": 300}, "replay": {"rows_in": 129, "examples": 95, "rejected": {}}}}))
    assert bench.replay_rows(tmp_path) == 95


def test_general_v2_is_what_the_builder_chooses_from_its_measurements(tmp_path):
    # bench/general_suite.py, fed the recorded measurements of the base model on every candidate,
    # chooses exactly the packaged suite: v2 is reproducible, not hand-picked.
    bench = Path(__file__).resolve().parents[1] / "bench"
    out = tmp_path / "suite.jsonl"
    builder = _bench("general_suite")
    assert builder.main([str(bench / "general_candidates.jsonl"), "--out", str(out),
                         "--from-report", str(bench / "general_candidates.stability.jsonl")]) == 0
    assert out.read_text(encoding="utf-8") == builtin_file("builtin:general-v2").read_text(encoding="utf-8")


def test_general_suite_builder_keeps_only_robust_passes():
    builder = _bench("general_suite")
    passed = {"none": {"greedy": True, "sampled": 0}, "deployed": {"greedy": True, "sampled": 4}}
    assert builder.robust(passed, 4)
    assert not builder.robust({**passed, "deployed": {"greedy": True, "sampled": 3}}, 4)  # a coin toss
    assert not builder.robust({**passed, "none": {"greedy": False, "sampled": 0}}, 4)
    assert not builder.robust({"deployed": passed["deployed"]}, 4)  # never tried without a system prompt

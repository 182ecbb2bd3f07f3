"""plan/apply end to end with real Axolotl training of builtin:tiny on the CPU.

One small project is applied, then edited in the ways a reviewer would (learning rate, a
cleaning rule, reformatting), and each apply must do exactly the work its plan announced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LLMSPEC = [sys.executable, "-m", "llmspec.cli"]

SPEC = """\
llmspec: 1
project: e2e-bot
base_model: {id: builtin:tiny}
sources:
  tickets:
    path: data/tickets.jsonl
    format: jsonl
    columns: {question: str, answer: str, product: "str?"}
quality:
  rules:
    - require: {columns: [question, answer]}
    - reject_matching: {column: answer, patterns: ['^\\s*(N/?A|<no output>)\\s*$']}
    - dedupe: {columns: [question], method: exact}
format:
  style: chat
  system: You are Acme's support assistant.
  map:
    tickets: {user: question, assistant: answer}
split: {eval_fraction: 0.1, seed: 1}
training:
  method: lora
  learning_rate: 0.002
  max_steps: 12
  save_every: 4
  sequence_len: 128
  batch: {micro: 8, accumulate: 1}
  hardware: cpu
acceptance:
  max_new_tokens: 16
  tests:
    - {name: answers-something, prompt: How do I reset my router?, expect: [{max_chars: 2000}]}
  gates:
    pass_rate: ">= 0.5"
"""


def run(args, cwd, env=None, timeout=600, check=True):
    proc = subprocess.run(LLMSPEC + args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"llmspec {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_project(tmp: Path) -> Path:
    (tmp / "data").mkdir(parents=True)
    lines = (REPO / "examples/support-bot/data/tickets.jsonl").read_bytes().splitlines(keepends=True)[:120]
    (tmp / "data/tickets.jsonl").write_bytes(b"".join(lines))
    (tmp / "llmspec.yaml").write_text(SPEC)
    return tmp


def state(project: Path) -> dict:
    return json.loads((project / ".llmspec/state.json").read_text())


def last_run(project: Path) -> dict:
    return state(project)["runs"][-1]


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("e2e"))
    # A pipe, as in CI; progress every second so this short training prints several lines.
    proc = run(["apply", "llmspec.yaml", "--yes"], project, env={"LLMSPEC_PROGRESS_SECONDS": "1"})
    return project, proc


PROGRESS = re.compile(r"^  training: step (\d+)/(\d+) \((\d+)%\)(.*)$", re.M)


def test_apply_in_a_pipe_prints_training_progress_lines_and_no_library_noise(applied):
    project, proc = applied
    assert "training: 12 steps" in proc.stdout
    lines = PROGRESS.findall(proc.stdout)
    assert len(lines) >= 3, proc.stdout
    assert {total for _, total, _, _ in lines} == {"12"}
    steps = [int(step) for step, _, _, _ in lines]
    assert steps == sorted(steps)
    assert any("loss " in rest and " left" in rest for _, _, _, rest in lines), proc.stdout
    assert lines[-1][:3] == ("12", "12", "100") and lines[-1][3].endswith("done")
    # torch/torchao/transformers warnings go to the run's train.log, not the user's terminal.
    noise = [line for line in proc.stderr.splitlines() if line.strip()]
    assert not noise, proc.stderr[-3000:]


def test_first_apply_trains_for_real_and_promotes(applied):
    project, proc = applied
    run_info = last_run(project)
    assert run_info["outcome"] == "promoted", proc.stdout
    assert set(run_info["built"]) == {"sources.tickets", "clean.tickets", "dataset", "train", "acceptance", "promote"}
    run_dir = project / ".llmspec/runs" / run_info["run"]
    training = json.loads((run_dir / "train" / "training.json").read_text())
    assert training["history"], "no loss was parsed from Axolotl's log"
    steps = [h["step"] for h in training["history"] if h["loss"] is not None]
    assert steps == sorted(steps) and steps[-1] == training["steps"] == 12
    assert training["final"]["eval_loss"] is not None and training["final"]["train_loss"] is not None
    # The trainer's own CPU time (a child process): bench/retention.py prints it beside the wall time.
    assert training["cpu_s"] > 0
    assert (run_dir / "train" / "train.log").read_text().count("loss") > 0
    assert (run_dir / "train" / "output" / "adapter_config.json").exists()
    assert (run_dir / "report.html").exists() and (run_dir / "report.md").exists()
    assert (run_dir / "acceptance.junit.xml").exists()
    lock = json.loads((project / "llmspec.lock").read_text())
    assert set(lock["stages"]) >= {"train", "clean.tickets"}
    assert list(lock["sources"]["tickets"]["files"]) == ["data/tickets.jsonl"]
    status = json.loads(run(["status", "llmspec.yaml", "--json"], project).stdout)
    assert status["promoted"]["run"] == run_info["run"]
    assert (Path(status["promoted"]["model_path"]) / "adapter_config.json").is_file()
    assert set(status["stages"].values()) == {"fresh"}


def test_second_apply_does_nothing_quickly(applied):
    project, _ = applied
    started = time.monotonic()
    proc = run(["apply", "llmspec.yaml", "--yes"], project)
    elapsed = time.monotonic() - started
    assert "Nothing to do" in proc.stdout
    plan = run(["plan", "llmspec.yaml", "--detailed-exitcode"], project, check=False)
    assert plan.returncode == 0, plan.stdout
    # Not a timing assertion on the product: a generous guard that the no-op path reads no data.
    assert elapsed < 30


def test_reformatting_changes_nothing(applied):
    project, _ = applied
    spec = project / "llmspec.yaml"
    original = spec.read_text()
    spec.write_text("# reviewed\n" + original.replace("project: e2e-bot", "project:   e2e-bot   # name")
                    .replace("  learning_rate: 0.002", "  learning_rate: 2.0e-3"))
    try:
        plan = run(["plan", "llmspec.yaml", "--detailed-exitcode"], project, check=False)
        assert plan.returncode == 0, plan.stdout
    finally:
        spec.write_text(original)


def test_learning_rate_edit_retrains_without_recleaning(applied):
    project, _ = applied
    spec = project / "llmspec.yaml"
    spec.write_text(spec.read_text().replace("learning_rate: 0.002", "learning_rate: 0.003"))
    plan = run(["plan", "llmspec.yaml", "--detailed-exitcode"], project, check=False)
    assert plan.returncode == 2
    assert "training.learning_rate: 0.002 -> 0.003" in plan.stdout
    assert "= clean.tickets" in plan.stdout
    run(["apply", "llmspec.yaml", "--yes"], project)
    built = set(last_run(project)["built"])
    assert "train" in built and "clean.tickets" not in built and "sources.tickets" not in built


def test_rule_edit_recleans_and_retrains(applied):
    project, _ = applied
    spec = project / "llmspec.yaml"
    spec.write_text(spec.read_text().replace("method: exact", "method: fingerprint"))
    run(["apply", "llmspec.yaml", "--yes"], project)
    built = set(last_run(project)["built"])
    assert {"clean.tickets", "dataset", "train"} <= built and "sources.tickets" not in built


def test_concurrent_apply_exits_1_naming_the_holder(applied):
    project, _ = applied
    from llmspec.runtime.engine.state import ApplyLock

    with ApplyLock(project / ".llmspec"):
        spec = project / "llmspec.yaml"
        spec.write_text(spec.read_text().replace("max_new_tokens: 16", "max_new_tokens: 17"))
        proc = run(["apply", "llmspec.yaml", "--yes"], project, check=False)
    assert proc.returncode == 1
    assert "another apply is running on this project (pid" in proc.stderr


def test_stale_saved_plan_is_refused(applied):
    project, _ = applied
    run(["plan", "llmspec.yaml", "-o", "reviewed.plan.json"], project)
    spec = project / "llmspec.yaml"
    spec.write_text(spec.read_text().replace("max_new_tokens: 17", "max_new_tokens: 18")
                    .replace("max_new_tokens: 16", "max_new_tokens: 18"))
    proc = run(["apply", "reviewed.plan.json", "--yes"], project, check=False)
    assert proc.returncode == 1
    assert "stale-plan" in proc.stderr and "the spec changed" in proc.stderr


def test_saved_plan_applies_when_nothing_moved(applied):
    project, _ = applied
    run(["plan", "llmspec.yaml", "-o", "reviewed.plan.json"], project)
    proc = run(["apply", "reviewed.plan.json", "--yes"], project)
    assert "acceptance" in last_run(project)["built"], proc.stdout


def _wait_for(predicate, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _start_apply(project: Path) -> subprocess.Popen:
    return subprocess.Popen(LLMSPEC + ["apply", "llmspec.yaml", "--yes"], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _state_is_consistent(project: Path) -> None:
    """Every stage the state calls built has its complete folder; no run claims to be finished."""
    if not (project / ".llmspec/state.json").exists():
        return
    for rec in state(project)["stages"].values():
        assert (project / ".llmspec" / rec["outputs"]["dir"]).is_dir()
    finished = [p for p in (project / ".llmspec/runs").iterdir() if not p.name.endswith(".partial")]
    assert not finished, finished


def test_sigkill_during_cleaning_then_training_then_resume(tmp_path):
    # One project, killed twice (while cleaning, then mid-training), then applied to the end:
    # the state stays consistent and the third apply resumes training from its checkpoint.
    project = make_project(tmp_path)
    spec = project / "llmspec.yaml"
    spec.write_text(spec.read_text().replace("max_steps: 12", "max_steps: 40"))
    work = project / ".llmspec" / "work"

    proc = _start_apply(project)
    assert _wait_for(lambda: any(work.glob("clean.tickets-*")) or any(work.glob("dataset-*"))
                     or any(work.glob("train-*")), 180), "cleaning never started"
    _kill(proc)
    _state_is_consistent(project)

    proc = _start_apply(project)
    try:
        assert _wait_for(lambda: any(work.glob("train-*/output/checkpoint-*")), 400), "no checkpoint was written"
    finally:
        _kill(proc)
    _state_is_consistent(project)
    assert "train" not in state(project)["stages"] and "clean.tickets" in state(project)["stages"]

    out = run(["apply", "llmspec.yaml", "--yes"], project, env={"LLMSPEC_PROGRESS_SECONDS": "1"})
    resumed = re.search(r"training: 40 steps \(resuming from the checkpoint at step (\d+)\)", out.stdout)
    assert resumed, out.stdout
    lines = PROGRESS.findall(out.stdout)
    assert lines and all(int(step) >= int(resumed.group(1)) for step, _, _, _ in lines), out.stdout
    assert lines[-1][:2] == ("40", "40")
    built = set(last_run(project)["built"])
    assert "clean.tickets" not in built and "train" in built
    assert last_run(project)["outcome"] == "promoted"
    assert not list(work.glob("train-*")), "the finished training's work folder was not moved into place"


def test_against_previous_git_revision(tmp_path):
    project = make_project(tmp_path)
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], cwd=project, check=True)
    subprocess.run(git + ["add", "."], cwd=project, check=True)
    subprocess.run(git + ["commit", "-qm", "one"], cwd=project, check=True)
    spec = project / "llmspec.yaml"
    spec.write_text(spec.read_text().replace("learning_rate: 0.002", "learning_rate: 0.0005"))
    subprocess.run(git + ["commit", "-qam", "two"], cwd=project, check=True)
    proc = run(["plan", "llmspec.yaml", "--against", "HEAD~1", "--format", "markdown"], project)
    assert "training.learning_rate: 0.002 -> 0.0005" in proc.stdout
    assert "| ⚪ | `clean.tickets` | unchanged |" in proc.stdout
    bad = run(["plan", "llmspec.yaml", "--against", "no-such-rev"], project, check=False)
    assert bad.returncode == 1 and "against-unavailable" in bad.stderr


def test_lock_file_lets_ci_plan_without_state_but_apply_trusts_only_state(applied, tmp_path):
    project, _ = applied
    run(["apply", "llmspec.yaml", "--yes"], project)  # whatever ran before, state and lock now match the spec
    clone = tmp_path / "clone"
    shutil.copytree(project, clone, ignore=shutil.ignore_patterns(".llmspec", "*.plan.json"))
    spec = clone / "llmspec.yaml"
    lock_stages = json.loads((clone / "llmspec.lock").read_text())["stages"]
    plan = run(["plan", "llmspec.yaml", "--format", "json"], clone)
    data = json.loads(plan.stdout)
    assert data["baseline"] == "llmspec.lock"
    assert {s["id"] for s in data["stages"] if s["action"] == "unchanged"} == set(lock_stages), plan.stdout
    spec.write_text(spec.read_text().replace("max_new_tokens:", "max_new_tokens: 5 #"))
    changed = json.loads(run(["plan", "llmspec.yaml", "--format", "json"], clone).stdout)
    assert {s["id"] for s in changed["stages"] if s["action"] == "change"} == {"acceptance", "promote"}

    from llmspec.api import make_plan

    for_apply = make_plan(spec, for_apply=True)
    assert {d.action for d in for_apply.diff.stages} == {"new"}


def test_impossible_test_exits_3_and_keeps_the_promoted_run(applied):
    project, _ = applied
    promoted_before = state(project)["promoted"]["run"]
    spec = project / "llmspec.yaml"
    original = spec.read_text()
    spec.write_text(original.replace(
        "    - {name: answers-something,",
        "    - {name: impossible, prompt: Say the secret word., expect: [{equals: xyzzy-never-said}]}\n"
        "    - {name: answers-something,").replace('pass_rate: ">= 0.5"', 'pass_rate: ">= 1.0"'))
    try:
        proc = run(["apply", "llmspec.yaml", "--yes"], project, check=False)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "gate-failed" in proc.stderr and "not promoted" in proc.stdout
        assert "train" not in last_run(project)["built"]  # only the tests re-ran
        assert state(project)["promoted"]["run"] == promoted_before
        run_dir = project / ".llmspec/runs" / last_run(project)["run"]
        import xml.etree.ElementTree as ET

        suite = ET.parse(run_dir / "acceptance.junit.xml").getroot()
        failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
        assert failed == ["impossible"]
        again = run(["test", "llmspec.yaml"], project, check=False)   # the promoted run, same gates
        assert again.returncode == 3
    finally:
        spec.write_text(original)


def test_plan_shows_examples_with_trained_tokens_marked(applied):
    project, _ = applied
    proc = run(["plan", "llmspec.yaml", "--examples", "2"], project)
    assert "--- example 2" in proc.stdout
    # only the assistant's reply (and its end-of-turn token) is trained, as Axolotl masks it
    assert "<|im_start|>assistant\n[[" in proc.stdout and "<|im_end|>]]" in proc.stdout
    assert "[[<|im_start|>user" not in proc.stdout

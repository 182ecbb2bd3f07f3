"""The promoted model is sacred (issue 13, class 1), proven by killing real applies.

`LLMSPEC_TEST_KILL_AT=<point>` makes apply SIGKILL itself at a named moment
(runtime/engine/faults.py): what is left must hold either the old promotion or the new one,
the promoted model's files must never change, and the next apply must repair the leftovers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LLMSPEC = [sys.executable, "-m", "llmspec.cli"]

SPEC = """\
llmspec: 1
project: sacred
base_model: {id: builtin:tiny}
sources:
  tickets:
    path: data/tickets.jsonl
    format: jsonl
    columns: {question: str, answer: str, product: "str?"}
format:
  style: chat
  map:
    tickets: {user: question, assistant: answer}
split: {eval_fraction: 0.0}
training:
  method: lora
  learning_rate: 0.002
  max_steps: 3
  sequence_len: 128
  batch: {micro: 8, accumulate: 1}
  hardware: cpu
acceptance:
  max_new_tokens: 4
  tests:
    - {name: answers, prompt: How do I reset my router?, expect: [{max_chars: 100000}]}
"""
FAILING_TEST = "    - {name: impossible, prompt: Hi, expect: [{contains: zz-never-said-zz}]}\n"


def llmspec(args, cwd: Path, *, kill_at: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("LLMSPEC_TEST_KILL_AT", None)
    if kill_at:
        env["LLMSPEC_TEST_KILL_AT"] = kill_at
    proc = subprocess.run(LLMSPEC + args, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"llmspec {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def state(project: Path) -> dict:
    return json.loads((project / ".llmspec" / "state.json").read_text())


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def edit(project: Path, old: str, new: str) -> None:
    spec = project / "llmspec.yaml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def promoted(tmp_path_factory) -> Path:
    """A project whose first apply promoted run A."""
    project = tmp_path_factory.mktemp("sacred") / "p"
    (project / "data").mkdir(parents=True)
    lines = (REPO / "examples/support-bot/data/tickets.jsonl").read_bytes().splitlines(keepends=True)[:60]
    (project / "data/tickets.jsonl").write_bytes(b"".join(lines))
    (project / "llmspec.yaml").write_text(SPEC)
    llmspec(["apply", "llmspec.yaml", "--yes"], project)
    assert state(project)["promoted"]
    return project


@pytest.fixture
def project(promoted, tmp_path) -> Path:
    copy = tmp_path / "p"
    shutil.copytree(promoted, copy, symlinks=True)
    # The promoted record holds absolute paths of the original: point them at the copy.
    st = copy / ".llmspec" / "state.json"
    st.write_text(st.read_text().replace(str(promoted), str(copy)))
    return copy


def promoted_files(project: Path) -> tuple[str, str]:
    p = state(project)["promoted"]
    return p["run"], tree_digest(Path(p["model_path"]))


def test_a_same_fingerprint_run_that_fails_its_gates_never_touches_the_promoted_model(project):
    run_a, files_a = promoted_files(project)
    # A different learning rate whose (default, every-test-must-pass) gate fails...
    edit(project, "learning_rate: 0.002", "learning_rate: 0.003")
    edit(project, "expect: [{max_chars: 100000}]}\n", "expect: [{max_chars: 100000}]}\n" + FAILING_TEST)
    assert llmspec(["apply", "llmspec.yaml", "--yes"], project, check=False).returncode == 3
    # ...then back to A's training settings, still with the failing test: train-<A> exists.
    edit(project, "learning_rate: 0.003", "learning_rate: 0.002")
    proc = llmspec(["apply", "llmspec.yaml", "--yes"], project, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert promoted_files(project) == (run_a, files_a)
    llmspec(["test", "llmspec.yaml", "--run", run_a], project, check=False)  # must not be an internal error


@pytest.mark.parametrize("moment", ["before-run-rename", "after-run-rename", "before-stage-rename:train",
                                    "after-stage:train", "before-axolotl"])
def test_a_kill_at_any_moment_leaves_the_old_or_the_new_promotion(project, moment):
    run_a, files_a = promoted_files(project)
    edit(project, "learning_rate: 0.002", "learning_rate: 0.0025")
    killed = llmspec(["apply", "llmspec.yaml", "--yes"], project, kill_at=moment, check=False)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    after = state(project)
    assert after["promoted"]["run"] == run_a  # a kill before the commit keeps the old promotion
    assert tree_digest(Path(after["promoted"]["model_path"])) == files_a
    if moment == "before-axolotl":
        # A half-written Axolotl dataset cache from the killed run must not break the next one.
        work = next((project / ".llmspec" / "work").glob("train-*"))
        (work / "prepared" / "junk").mkdir(parents=True)
        (work / "prepared" / "junk" / "data-00000-of-00001.arrow").write_bytes(b"\x00half")
    status = json.loads(llmspec(["status", "llmspec.yaml", "--json"], project).stdout)
    assert status["promoted"]["run"] == run_a
    # The next apply repairs the leftovers and promotes the new run.
    llmspec(["apply", "llmspec.yaml", "--yes"], project)
    final = state(project)
    assert final["promoted"]["run"] != run_a
    assert Path(final["promoted"]["model_path"]).is_dir()
    assert not list((project / ".llmspec" / "runs").glob("*.partial"))
    assert all(r["outcome"] != "running" for r in final["runs"])
    llmspec(["test", "llmspec.yaml"], project)


def test_tests_without_gates_must_all_pass(project):
    run_a, _ = promoted_files(project)
    edit(project, "expect: [{max_chars: 100000}]}\n", "expect: [{max_chars: 100000}]}\n" + FAILING_TEST)
    plan = llmspec(["plan", "llmspec.yaml"], project).stdout
    assert "every test must pass" in plan
    proc = llmspec(["apply", "llmspec.yaml", "--yes"], project, check=False)
    assert proc.returncode == 3
    assert "impossible" in proc.stdout + proc.stderr
    assert state(project)["promoted"]["run"] == run_a

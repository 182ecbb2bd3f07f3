"""A small project with state, lock and saved plan written the way llmspec writes them, and the
CLI run in-process, for the tests of the files llmspec reads back (test_artifacts*.py,
test_state_faults.py). Nothing here trains."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

SPEC = """\
llmspec: 1
project: faults
description: state and lock files under fire
base_model: {id: builtin:tiny}
sources:
  qa:
    path: data/qa.jsonl
    format: jsonl
    columns: {question: str, answer: str}
    expect: {min_rows: 3}
quality:
  rules:
    - require: {columns: [question, answer]}
format:
  style: chat
  map:
    qa: {user: question, assistant: answer}
training: {epochs: 1, hardware: cpu}
acceptance:
  tests:
    - {name: hours, prompt: When are you open?, expect: [{max_chars: 500}]}
"""

ROWS = [{"question": f"Question number {i}?", "answer": f"Answer number {i}."} for i in range(12)]


def make_project(tmp: Path) -> Path:
    """The spec's path in a new project folder under `tmp`."""
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    (tmp / "data/qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    spec = tmp / "llmspec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    return spec


@pytest.fixture
def no_axolotl_check(monkeypatch):
    """Planning a new train stage asks Axolotl's validator (tens of seconds to import); these
    tests are about state files, and Axolotl's verdict has its own tests."""
    import llmspec.runtime.train.run as train_run

    monkeypatch.setattr(train_run, "check_training_config", lambda loaded, **kw: [])


def write_built_state(spec: Path) -> None:
    """state.json and llmspec.lock as an apply that built every stage would leave them (the
    stage folders themselves are not made: nothing here reads them)."""
    from llmspec.api import lock_path, make_plan, state_root
    from llmspec.compiler.plan import metadata_of
    from llmspec.runtime.engine.state import State, StageRecord, now_iso, write_lockfile

    report = make_plan(spec, for_apply=True)
    root = state_root(report.loaded)
    state = State(root=root)
    outputs = {"sources": {"rows_in": 12, "rows": 12, "unreadable": 0},
               "clean": {"rows_in": 12, "rows_kept": 12, "rejected": {}, "modified": {}},
               "dataset": {"train": 10, "eval": 2, "leakage_removed": 0, "rejected": {}, "style": "chat"},
               "train": {"model": "output", "adapter": True, "eval_loss": 1.5},
               "acceptance": {"gates": []}, "promote": {"promoted_run": "20260101-000000-abcdef"}}
    for stage in report.plan.stages:
        state.stages[stage.id] = StageRecord(
            fingerprint=stage.fingerprint, config=stage.config, run="20260101-000000-abcdef",
            outputs={**outputs[stage.kind], "dir": f"stages/{stage.id}-{stage.fingerprint[:12]}"},
            built_at=now_iso())
    state.record_run({"run": "20260101-000000-abcdef", "started_at": now_iso(), "finished_at": now_iso(),
                      "outcome": "promoted", "built": [s.id for s in report.plan.stages], "reused": [],
                      "metadata": metadata_of(report.loaded.spec)})
    state.promoted = {"run": "20260101-000000-abcdef", "model_path": str(root / "stages/train/output"),
                      "adapter": True, "base_model_path": None, "promoted_at": now_iso(),
                      "fingerprint": report.plan.stage("promote").fingerprint}
    root.mkdir(exist_ok=True)
    state.save()
    write_lockfile(lock_path(report.loaded), project="faults", base_model=report.plan.base_model,
                   source_files={"qa": state.stages["sources.qa"].config["files"]},
                   stages={k: v.fingerprint for k, v in state.stages.items()}, source_rows={"qa": 12},
                   metadata=metadata_of(report.loaded.spec))


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`llmspec ARGS` in this process, as the console script runs it: (exit code, stdout, stderr)."""
    from llmspec.cli import main

    monkeypatch.setattr(sys, "argv", ["llmspec", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err

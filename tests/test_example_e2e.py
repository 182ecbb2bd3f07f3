"""The support-bot example, applied for real: the fine-tuned model passes its acceptance
tests and the generic base model fails them (so `beats_baseline` means something)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def test_support_bot_example_trains_and_beats_the_base_model(tmp_path):
    project = tmp_path / "support-bot"
    shutil.copytree(REPO / "examples/support-bot", project,
                    ignore=shutil.ignore_patterns(".llmspec", "llmspec.lock", "__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "llmspec.cli", "apply", "llmspec.yaml", "--yes"], cwd=project,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = json.loads((project / ".llmspec/state.json").read_text())
    run_dir = project / ".llmspec/runs" / state["runs"][-1]["run"]
    report = json.loads((run_dir / "report.json").read_text())
    tests = report["acceptance"]["tests"]
    assert len(tests) == 6
    assert all(t["passed"] for t in tests), [(t["name"], t["output"]) for t in tests if not t["passed"]]
    assert not any(t["base"]["passed"] for t in tests)
    assert {g["name"]: g["passed"] for g in report["acceptance"]["gates"]}["beats_baseline"]
    # the data defects the example plants were caught and counted
    tickets = report["sources"]["tickets"]
    assert tickets["rows_in"] == 344 and tickets["rows_kept"] == 300
    assert tickets["rejected"]["corrupt"] == 8
    assert "Pass rate: fine-tuned 100.0% (6/6)" in proc.stdout

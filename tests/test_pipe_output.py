"""Commands in a pipe (CI logs): tables are not folded at rich's default 80 columns, and a
re-test names its verdict instead of "unknown"."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from llmspec.runtime.reports.terminal import print_summary
from report_sample import sample_report

REPO = Path(__file__).resolve().parents[1]


def test_clean_table_in_a_pipe_keeps_each_sample_on_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-m", "llmspec.cli", "clean",
                           str(REPO / "examples/support-bot/llmspec.yaml")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    sample = ("data/tickets.jsonl:65: not JSON: Expecting value at column 1  "
              "raw=b'ERROR: export worker timed out after 30s; retrying batch 7'")
    assert any(sample in line for line in lines), proc.stdout[:3000]
    assert max(len(line) for line in lines) > 120


def test_an_explicit_columns_still_wins(monkeypatch) -> None:
    from llmspec.commands._console import PIPE_WIDTH, make_console

    monkeypatch.setenv("COLUMNS", "100")
    assert make_console(file=io.StringIO()).width == 100
    monkeypatch.delenv("COLUMNS")
    assert make_console(file=io.StringIO()).width == PIPE_WIDTH


def test_a_retest_summary_names_its_verdict() -> None:
    report = sample_report()
    for outcome, words in (("retest_passed", "every error gate passes"),
                           ("retest_failed", "an error gate fails")):
        buf = io.StringIO()
        print_summary({"acceptance": report["acceptance"], "run": report["run"], "outcome": outcome},
                      Console(file=buf, no_color=True, width=120))
        first = buf.getvalue().splitlines()[0]
        assert words in first and "unknown" not in first


def test_a_retest_markdown_summary_names_its_verdict() -> None:
    from llmspec.runtime.reports.markdown import render_markdown

    report = sample_report()
    md = render_markdown({"acceptance": report["acceptance"], "run": "r", "outcome": "retest_failed"})
    assert "tests re-run, an error gate fails" in md.splitlines()[0]
    assert "unknown" not in md.splitlines()[0]

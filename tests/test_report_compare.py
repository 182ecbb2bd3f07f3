"""The report's guidance parts: the comparison with the project's previous run (read from its
report.json), rules that rejected nothing collapsed to one line, the matched part of a reject
highlighted, and the commands to use the model."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import polars as pl
import pytest

from llmspec.runtime.reports import render_html, render_markdown
from llmspec.runtime.reports.compare import compare_runs, previous_report
from llmspec.runtime.reports.samples import reject_samples, window
from llmspec.runtime.reports.writer import write_reports
from report_sample import sample_report


def _previous(report: dict) -> dict:
    prev = copy.deepcopy(report)
    prev["run"] = "20260123-090000-aaaaaa"
    prev["created_at"] = "2026-01-23T09:00:00+00:00"
    tests = prev["acceptance"]["tests"]
    tests[0]["passed"] = False            # factory-reset: fixed since
    tests[3]["passed"] = True             # refund-window: broken since
    tests[5]["name"] = "old-test"         # removed; markup-in-message is new
    prev["acceptance"]["pass_rate"] = 4 / 6
    prev["sources"]["tickets"] = dict(prev["sources"]["tickets"], rows_in=350, rows_kept=302,
                                      rejected=dict(prev["sources"]["tickets"]["rejected"], empty_answer=10))
    del prev["sources"]["docs"]
    return prev


def _write_run(runs: Path, report: dict, outcome: str | None = None) -> None:
    d = runs / report["run"]
    d.mkdir(parents=True)
    (d / "report.json").write_text(json.dumps(dict(report, outcome=outcome or report["outcome"])))


def test_previous_report_is_the_newest_earlier_run_that_built_something(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    base = sample_report()
    _write_run(runs, dict(base, run="20260120-000000-000001"))
    _write_run(runs, dict(base, run="20260121-000000-000002"))
    _write_run(runs, dict(base, run="20260122-000000-000003"), outcome="noop")
    _write_run(runs, dict(base, run="20260130-000000-000004"))  # later than the current run
    (runs / "20260121-500000-broken").mkdir()                      # no report.json
    prev = previous_report(runs, "20260124-101530-3f9c2a")
    assert prev is not None and prev["run"] == "20260121-000000-000002"
    assert previous_report(runs, "20260101-000000-000000") is None
    assert previous_report(tmp_path / "missing", "x") is None


def test_comparison_lists_pass_rate_test_and_funnel_changes() -> None:
    now = sample_report()
    cmp = compare_runs(now, _previous(now))
    assert cmp["pass_rate"]["before"] == pytest.approx(4 / 6)
    assert cmp["pass_rate"]["delta"] == pytest.approx(now["acceptance"]["pass_rate"] - 4 / 6)
    assert cmp["tests"]["fixed"] == ["factory-reset"]
    assert cmp["tests"]["broken"] == ["refund-window"]
    assert cmp["tests"]["added"] == ["markup-in-message"] and cmp["tests"]["removed"] == ["old-test"]
    assert cmp["tests"]["unchanged"] == 3
    by = {s["source"]: s for s in cmp["sources"]}
    assert by["tickets"]["rows_in"] == (350, 344) and by["tickets"]["rows_kept"] == (302, 300)
    assert by["tickets"]["rules"] == [{"rule": "empty_answer", "before": 10, "now": 6}]
    assert by["docs"]["status"] == "added" and not by["mailbox"]["changed"]


def test_write_reports_compares_with_the_previous_run(tmp_path: Path) -> None:
    runs = tmp_path / ".llmspec" / "runs"
    now = sample_report()
    _write_run(runs, _previous(now))
    partial = runs / (now["run"] + ".partial")
    partial.mkdir()
    report = copy.deepcopy(now)
    write_reports(report, partial, final_dir=runs / now["run"])
    assert report["comparison"]["run"] == "20260123-090000-aaaaaa"
    html = (partial / "report.html").read_text(encoding="utf-8")
    section = html.split('<section id="previous">')[1].split("</section>")[0]
    assert "20260123-090000-aaaaaa" in section
    assert "66.7% → <strong>83.3%</strong>" in section and "+16.7 points" in section
    assert re.search(r"Now passing</th><td><code>factory-reset</code>", section)
    assert re.search(r"Now failing</th><td><code>refund-window</code>", section)
    assert "<code>empty_answer</code> 10 → 6" in section and "350 → 344" in section
    md = (partial / "report.md").read_text(encoding="utf-8")
    assert "Pass rate: 66.7% → **83.3%**" in md and "Now failing: `refund-window`" in md
    # The first run of a project has nothing to compare with.
    first = copy.deepcopy(now)
    other = tmp_path / "other" / "runs"
    (other / "x.partial").mkdir(parents=True)
    write_reports(first, other / "x.partial", final_dir=other / now["run"])
    assert "comparison" not in first
    assert 'id="previous"' not in (other / "x.partial" / "report.html").read_text(encoding="utf-8")


def test_rules_that_rejected_nothing_are_one_line() -> None:
    report = sample_report()
    rejected = report["sources"]["tickets"]["rejected"]
    for i in range(15):
        rejected[f"idle_rule_{i:02d}"] = 0
    report["sources"]["tickets"]["modified"]["idle_fix"] = 0
    html = render_html(report)
    tickets = html.split('id="source-1"')[1].split('id="source-2"')[0]
    rejects_table = tickets.split('<table class="rejects">')[1].split("</table>")[0]
    assert rejects_table.count("<tr><td><code>") == 6  # the six rules that rejected rows
    assert "no samples kept" not in tickets
    assert "Rejected nothing: <code>idle_rule_00</code>, <code>idle_rule_01</code>" in tickets
    assert "Changed nothing: <code>idle_fix</code>" in tickets
    legend = html.split('class="legend"')[1].split("</div>")[0]
    assert "idle_rule" not in legend
    assert "idle_rule_00 0" not in render_markdown(report)


def test_reject_window_shows_and_marks_the_match_past_the_cut() -> None:
    text = "a fine answer " * 40 + "then <no output> at the end"
    shown = window(text, [re.compile(r"<no output>")])
    start, end = shown["match"]
    assert shown["text"][start:end] == "<no output>"
    assert shown["text"].startswith("…") and len(shown["text"]) <= 302
    assert window(text[:50], None) == {"text": text[:50], "match": None}


def test_reject_samples_mark_the_rule_pattern_and_the_page_highlights_it() -> None:
    from llmspec.compiler.cleaning import CleaningStep

    long = "x " * 300 + "my password is hunter2"
    rejects = pl.DataFrame({"answer": [long, "ok"], "_rule": ["secret", "short"],
                            "_detail": ["answer matches 'password'", "too short"],
                            "_origin": ["a.jsonl:1", "a.jsonl:2"]})
    steps = [CleaningStep(index=0, reason="secret", kind="reject_matching", action="reject",
                          columns=["answer"], args={"patterns": ["pass(word|phrase)"]})]
    samples = reject_samples(rejects, steps)
    (s,) = samples["secret"]
    assert s["text"][s["match"][0]:s["match"][1]] == "password"
    assert samples["short"][0]["match"] is None
    report = sample_report()
    report["sources"]["tickets"]["samples"]["corrupt_line"] = [dict(s, origin="a.jsonl:1")]
    html = render_html(report)
    assert "<mark>password</mark> is hunter2" in html


def test_use_this_model_lists_the_commands_for_a_trained_run() -> None:
    report = sample_report()
    html = render_html(report)
    section = html.split('<section id="use">')[1].split("</section>")[0]
    for verb in ("chat", "serve", "export", "test"):
        assert f"llmspec {verb} examples/support-bot/llmspec.yaml --run {report['run']}" in section
    assert '<a href="#use">' in html
    no_model = copy.deepcopy(report)
    no_model["artifacts"].pop("model")
    assert 'id="use"' not in render_html(no_model)


def test_rendered_examples_say_what_they_are() -> None:
    report = sample_report()
    assert "chat template included" not in render_html(report)
    report["dataset"]["chat_template"] = "chatml"
    assert "Axolotl wraps each turn in the chat template (chatml)" in render_html(report)


def test_numbers_read_as_people_write_them() -> None:
    report = sample_report()
    report["training"]["epochs"] = 0.05658
    html = render_html(report)
    assert "<dt>Epochs</dt><dd>0.06</dd>" in html and "0.05658" not in html
    gates = html.split('<table class="gates">')[1].split("</table>")[0]
    rows = {re.search(r"<code>([^<]+)</code>", r).group(1): r for r in gates.split("<tr")[1:]
            if "<code>" in r}
    assert '<td class="num">83.3%</td>' in rows["pass_rate"]
    assert '<td class="num">50%</td>' in rows["pass_rate_by_tag:refunds"]
    assert '<td class="num">0.8341</td>' in rows["eval_loss"]  # a loss stays a number
    report["acceptance"]["gates"][3]["value"] = 6  # beats_baseline: a count of tests
    assert "600%" not in render_html(report)

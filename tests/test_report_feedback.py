"""The run report's feedback section: what came in from `llmspec serve` (counts by rating, the
reasons rows were not used, samples) and how the corrected cases fare on the new model, in
report.json, report.md and report.html alike."""

from __future__ import annotations

import json

import polars as pl

from llmspec.runtime.reports.writer import write_reports


def run_folder(tmp_path):
    run = tmp_path / "runs" / "r2"
    (run / "clean.fb").mkdir(parents=True)
    (run / "sources.fb").mkdir()
    pl.DataFrame({
        "prompt": ["What does the orange light mean?", "Is it <b>on</b>?"],
        "answer": ["The hub lost its internet connection.", "Yes, it is on."],
        "rejected": ["It means nothing.", "Yes, it is on."],
        "exchange_id": ["chatcmpl-1", "chatcmpl-2"], "rating": ["corrected", "up"],
        "_origin": ["fb:exchange chatcmpl-1", "fb:exchange chatcmpl-2"],
    }).write_parquet(run / "clean.fb" / "kept.parquet")
    down = "rated down without a correction: nothing to learn the right answer from"
    pl.DataFrame({"_rule": ["feedback"] * 3, "_detail": [down, down, "no rating and no correction"],
                  "_origin": ["a", "b", "c"]}).write_parquet(run / "sources.fb" / "rejected.parquet")
    report = {
        "project": "loop-bot", "run": "r2", "outcome": "promoted",
        "sources": {"fb": {"format": "feedback", "rows_in": 5, "rows_kept": 2, "rejected": {"feedback": 3}},
                    "tickets": {"format": "jsonl", "rows_in": 3, "rows_kept": 3, "rejected": {}}},
        "acceptance": {"pass_rate": 0.5, "tests": [
            {"name": "feedback:chatcmpl-1", "prompt": "What does the orange light mean?", "passed": True,
             "score": 0.9, "output": "The hub lost its internet connection.", "base": {"passed": False}},
            {"name": "feedback:chatcmpl-9", "prompt": "Other?", "passed": False, "score": 0.1, "output": "no"},
            {"name": "answers-something", "prompt": "Hi", "passed": True, "output": "hello"}]},
    }
    return run, report


def test_feedback_section_counts_samples_and_corrected_cases(tmp_path):
    run, report = run_folder(tmp_path)
    write_reports(report, run, final_dir=run)
    fb = report["feedback"]
    src = fb["sources"]["fb"]
    assert (src["read"], src["kept"]) == (5, 2)
    assert src["by_rating"] == {"corrected": 1, "up": 1}
    assert src["not_used"] == {"rated down without a correction: nothing to learn the right answer from": 2,
                               "no rating and no correction": 1}
    assert src["samples"][0] == {"exchange": "chatcmpl-1", "rating": "corrected",
                                 "prompt": "What does the orange light mean?", "answer_was": "It means nothing.",
                                 "learned": "The hub lost its internet connection."}
    assert [t["name"] for t in fb["tests"]] == ["feedback:chatcmpl-1", "feedback:chatcmpl-9"]
    fixed = fb["tests"][0]
    assert fixed["correction"] == "The hub lost its internet connection." and fixed["answer_was"] == "It means nothing."
    assert fixed["passed"] and fixed["base_passed"] is False
    assert (fb["fixed"], fb["still_failing"]) == (1, 1)

    md = (run / "report.md").read_text()
    assert "### Feedback from `llmspec serve`" in md
    assert "5 rated exchanges read, 2 became examples (corrected 1, up 1)" in md
    assert "not used, 2: rated down without a correction" in md
    assert "**1 of 2 now pass**" in md and "| `feedback:chatcmpl-1` | ✅ pass |" in md
    assert "<b>" not in md  # model/user text is escaped
    html = (run / "report.html").read_text()
    assert 'id="feedback"' in html and "Corrected cases on the new model: 1 of 2 pass" in html
    assert "It means nothing." in html and "&lt;b&gt;on&lt;/b&gt;" in html
    json.dumps(report)  # report.json is written from this dict


def test_no_feedback_no_section(tmp_path):
    run, report = run_folder(tmp_path)
    del report["sources"]["fb"]
    report["acceptance"]["tests"] = report["acceptance"]["tests"][2:]
    write_reports(report, run, final_dir=run)
    assert "feedback" not in report
    assert "Feedback" not in (run / "report.md").read_text()
    assert 'id="feedback"' not in (run / "report.html").read_text()


def test_preference_rewards_show_in_the_training_section():
    from llmspec.runtime.reports.html import render_html
    from llmspec.runtime.reports.markdown import render_markdown

    report = {"project": "p", "outcome": "promoted",
              "training": {"method": "dpo", "rl": "dpo", "steps": 4, "base_model": "builtin:tiny",
                           "preference": {"rewards/margins": 1.302, "rewards/accuracies": 1.0}}}
    assert "rewards/margins 1.302" in render_markdown(report)
    assert "Last step rewards/margins" in render_html(report)

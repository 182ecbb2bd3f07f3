"""Assemble the run report's parts and write report.md, report.html and the JUnit copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any



def dataset_report(stage_dir: Path, *, style: str, chat_template: str | None = None,
                   examples: int = 3) -> dict[str, Any]:
    ds = json.loads((stage_dir / "dataset.json").read_text())
    lengths: list[int] = []
    rendered: list[dict] = []
    chat = False
    with open(stage_dir / ds["train_path"], encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            chat = chat or "messages" in record
            text = _record_text(record)
            lengths.append(max(1, len(text) // 4))  # chars/4: the report's stated approximation
            if len(rendered) < examples:
                rendered.append({"source": record.get("source", ""), "origin": "", "rendered": text})
    basis = "chars/4"
    exact = _measured_lengths(stage_dir / ds.get("origins_path", "origins.jsonl"))
    if exact is not None and len(exact) == len(lengths):
        # the dataset stage measured every example as Axolotl tokenizes it: no approximation
        lengths, basis = exact, "axolotl"
    return {"style": style, "train": ds["train_size"], "eval": ds["eval_size"],
            # Chat records are shown as role: text; Axolotl applies this template when it tokenizes.
            "chat_template": (chat_template or "the tokenizer's own") if chat else None,
            "leakage_removed": ds["leakage_removed"], "rejected": ds.get("rejected", {}),
            "token_lengths": lengths, "token_lengths_basis": basis, "examples": rendered,
            "tokens": ds.get("tokens")}


def _measured_lengths(origins: Path) -> list[int] | None:
    """The train examples' token counts the dataset stage wrote beside their origins, if any."""
    try:
        with open(origins, encoding="utf-8") as fh:
            lines = [json.loads(line) for line in fh if line.strip()]
    except (OSError, ValueError):
        return None
    counts = [o.get("tokens") for o in lines if o.get("split") == "train"]
    return counts if counts and all(isinstance(n, int) for n in counts) else None


def _record_text(record: dict) -> str:
    if "messages" in record:
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in record["messages"])
    if "segments" in record:
        return "".join(s.get("text", "") for s in record["segments"])
    return "\n".join(str(v) for k, v in record.items() if isinstance(v, str))


def write_reports(report: dict[str, Any], run_dir: Path, *, final_dir: Path) -> dict[str, str]:
    """Write the reports into run_dir (the run's folder before its final rename)."""
    from llmspec.runtime.reports.html import write_html_report
    from llmspec.runtime.reports.markdown import write_markdown_report

    artifacts = {"report_md": str(final_dir / "report.md"), "report_html": str(final_dir / "report.html")}
    junit = None
    for link in run_dir.iterdir():
        candidate = link / "acceptance.junit.xml"
        if link.name == "acceptance" and candidate.exists():
            junit = candidate
    if junit is not None:
        shutil.copyfile(junit, run_dir / "acceptance.junit.xml")
        artifacts["junit"] = str(final_dir / "acceptance.junit.xml")
    train = run_dir / "train"
    if train.exists():
        artifacts["log"] = str(final_dir / "train" / "train.log")
        artifacts["model"] = str(final_dir / "train" / report.get("training", {}).get("model", "output"))
    report["artifacts"] = artifacts
    from llmspec.runtime.reports.feedback import feedback_report

    feedback = feedback_report(report, run_dir)
    if feedback is not None:
        report["feedback"] = feedback
    from llmspec.runtime.reports.compare import compare_runs, previous_report

    previous = previous_report(final_dir.parent, final_dir.name)
    if previous is not None:
        report["comparison"] = compare_runs(report, previous)
    write_markdown_report(report, run_dir / "report.md")
    write_html_report(report, run_dir / "report.html")
    return artifacts

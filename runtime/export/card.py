"""The model card (README.md) written beside an export: what the model is, what it learned from,
how it was trained and tested, and how to use it. Facts come from the run's report.json."""

from __future__ import annotations

import json
from typing import Any

from llmspec.spec.errors import LlmspecError

from llmspec.runtime.serve.target import RunModel


def run_report(run: RunModel) -> dict[str, Any]:
    from llmspec.runtime.engine.artifacts import RunReport, load

    try:
        return load(RunReport, run.run_dir / "report.json").model_dump(mode="json")
    except LlmspecError:
        return {}  # the card is written from what the report holds; a damaged one only shortens it


def model_card(run: RunModel, *, fmt: str, project: str, parity: dict[str, Any] | None, version: str) -> str:
    report = run_report(run)
    lines = [f"# {project} ({fmt})", "",
             f"Fine-tuned with llmspec {version}, run `{run.run}`.", "",
             "## Base model", "",
             f"- id: `{run.base_model_id}`" + (f" @ `{run.base_model_revision}`" if run.base_model_revision else ""),
             f"- prompt layout: {run.style}" + (f", system prompt: {run.system!r}" if run.system else ""), ""]
    sources = report.get("sources") or {}
    if sources:
        lines += ["## Data", "", "| source | rows in | kept | rejected |", "|---|---:|---:|---:|"]
        for name, s in sources.items():
            rejected = sum((s.get("rejected") or {}).values())
            lines.append(f"| {name} | {s.get('rows_in')} | {s.get('rows_kept')} | {rejected} |")
        ds = report.get("dataset") or {}
        if ds:
            lines += ["", f"Dataset: {ds.get('train_size', ds.get('train'))} training examples, "
                      f"{ds.get('eval_size', ds.get('eval'))} evaluation examples."]
        lines.append("")
    training = report.get("training") or {}
    if training:
        final = training.get("final") or {}
        settings = training.get("settings") or training.get("config") or {}
        lines += ["## Training", "", f"- steps: {training.get('steps')}",
                  f"- final train loss: {final.get('train_loss')}, eval loss: {final.get('eval_loss')}"]
        if settings:
            lines.append(f"- settings: `{json.dumps(settings, sort_keys=True)[:400]}`")
        lines.append("")
    acc = report.get("acceptance") or {}
    if acc:
        lines += ["## Acceptance", "", f"- pass rate: {acc.get('pass_rate')} "
                  f"(base model: {acc.get('base_pass_rate')})"]
        for g in acc.get("gates") or []:
            lines.append(f"- gate `{g.get('name')}` {g.get('threshold')}: {'pass' if g.get('passed') else 'FAIL'}")
        retention = report.get("retention") or acc.get("retention")
        if retention:
            lines.append(f"- retention: `{json.dumps(retention, sort_keys=True)[:400]}`")
        lines.append("")
    if parity:
        lines += ["## Export parity", "", f"{parity['identical']}/{parity['prompts']} acceptance prompts answered "
                  f"identically by this export and the adapter as trained (greedy decoding).", ""]
    return "\n".join(lines) + "\n"

"""The report's "Use this model" section: the exact commands that chat with, serve, test and
export this run. Shown for a promoted run only: a run that failed its gates is not meant for use."""

from __future__ import annotations

import shlex
from typing import Any, Mapping


def use_commands(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(what it does, the command) pairs; empty when the run is not promoted."""
    if report.get("outcome") != "promoted" or not report.get("run") or not report.get("spec_path"):
        return []
    spec, run = shlex.quote(str(report["spec_path"])), shlex.quote(str(report["run"]))
    out = f"exports/{report['run']}"
    return [
        ("Chat in the terminal (--compare shows the base model's answer too)", f"llmspec chat {spec} --run {run}"),
        ("Serve an OpenAI-compatible API on 127.0.0.1:8000", f"llmspec serve {spec} --run {run}"),
        ("Run the acceptance tests against the served copy", f"llmspec test {spec} --endpoint http://127.0.0.1:8000"),
        ("Export merged weights (checked for parity)", f"llmspec export {spec} --run {run} --format merged --out {out}-merged"),
        ("Export the adapter with a model card", f"llmspec export {spec} --run {run} --format adapter --out {out}-adapter"),
        ("Export for Ollama", f"llmspec export {spec} --run {run} --format ollama --out {out}-ollama"),
    ]

"""How to use a run's model: the commands the report's "Use this model" section shows.

One table, so the chat / serve / export commands are listed in one place as they land (each
entry: what it does, the command line). ``{spec}`` and ``{run}`` are filled in per run.
"""

from __future__ import annotations

from typing import Any, Mapping

# (what it is for, command template). Keep in step with docs/after-promotion.md.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("Talk to the model in the terminal (--compare shows the base model's answer too)",
     "llmspec chat {spec} --run {run}"),
    ("Serve it behind an OpenAI-compatible HTTP API (127.0.0.1:8000)", "llmspec serve {spec} --run {run}"),
    ("Run the acceptance tests against the served copy", "llmspec test {spec} --endpoint http://127.0.0.1:8000"),
    ("Export merged weights, checked for parity (or --format adapter | ollama | gguf)",
     "llmspec export {spec} --run {run} --format merged --out {out}"),
    ("Re-run its acceptance tests (e.g. after changing them)", "llmspec test {spec} --run {run}"),
)


def usage_commands(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(purpose, command) pairs for a run that trained a model; empty otherwise."""
    artifacts = report.get("artifacts") or {}
    if not (artifacts.get("model") and report.get("run") and report.get("spec_path")):
        return []
    spec, run = _quote(str(report["spec_path"])), _quote(str(report["run"]))
    out = _quote(f"exports/{report['run']}-merged")
    return [(what, template.format(spec=spec, run=run, out=out)) for what, template in COMMANDS]


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)

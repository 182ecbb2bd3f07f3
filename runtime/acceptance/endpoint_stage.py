"""`llmspec test --endpoint`: the spec's acceptance suite and gates against a deployed model.

Works without a local run (a CI smoke test of a deployment has no `.llmspec/`): then the
holdout tests, which come from the run's eval split, and the eval_loss gate are left out. The
beats_baseline gate is judged at apply time, beside the base model; an endpoint serves the
fine-tuned model only, so that gate is reported as not evaluated here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmspec.spec.errors import LlmspecError
from llmspec.spec.load import LoadedSpec


def run_endpoint_suite(loaded: LoadedSpec, endpoint: str, *, run_id: str | None, model: str | None,
                       api_key: str | None, junit: Path | None, markdown: Path | None) -> dict[str, Any]:
    """Run the suite against ``endpoint``; the report dict (``{"acceptance": ..., "run": ...}``)."""
    from llmspec.runtime.acceptance.endpoint import EndpointModel
    from llmspec.runtime.acceptance.gates import evaluate_gates
    from llmspec.runtime.acceptance.junit import write_junit
    from llmspec.runtime.acceptance.runner import AcceptanceResult, junit_cases, prompt_format_for_style
    from llmspec.runtime.acceptance.stage import eval_records
    from llmspec.compiler.acceptance import compile_acceptance, runtime_suite
    from llmspec.spec.models import AcceptanceGates
    from llmspec.runtime.serve.target import resolve_run

    spec = loaded.spec
    try:
        run = resolve_run(loaded, run_id)
    except LlmspecError:
        if run_id is not None:
            raise
        run = None
    acc = spec.acceptance
    # The same compiled suite and gates (defaults included) as the acceptance stage.
    compiled = compile_acceptance(spec, loaded.base_dir, locate=loaded.locate)
    if run is not None:
        compiled["system"] = run.system
    holdout = acc.holdout.count if acc.holdout and run and run.dataset_dir else 0
    if not holdout:
        compiled["holdout"] = None
    tests = runtime_suite(compiled, eval_records(run.dataset_dir, holdout) if holdout else [])
    style = run.style if run else spec.format.style
    answerer = EndpointModel(endpoint, model=model, api_key=api_key, prompt_format=prompt_format_for_style(style))
    try:
        tuned = answerer.run(tests, default_max_new_tokens=acc.max_new_tokens)
    finally:
        answerer.close()
    result = AcceptanceResult(tests=tests, tuned=tuned, base=None)
    gates = evaluate_gates(AcceptanceGates.model_validate(compiled["gates"]), result, eval_loss=_eval_loss(run))
    result.gates = [g for g in gates if g.name != "beats_baseline"]
    report = {"acceptance": result.to_report(), "run": f"{endpoint} ({answerer.model})",
              "project": spec.project, "outcome": retest_outcome(result.gates)}
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        write_junit(junit, f"{spec.project}.acceptance", junit_cases(result))
    if markdown is not None:
        from llmspec.runtime.reports.markdown import write_markdown_report

        markdown.parent.mkdir(parents=True, exist_ok=True)
        write_markdown_report(report, markdown)
    return report


def retest_outcome(gates) -> str:
    """A re-test promotes nothing: its outcome is the error gates' verdict."""
    failed = any(not g.passed and g.severity == "error" for g in gates)
    return "retest_failed" if failed else "retest_passed"


def _eval_loss(run) -> float | None:
    if run is None:
        return None
    try:
        return json.loads((run.train_dir / "training.json").read_text()).get("final", {}).get("eval_loss")
    except (OSError, ValueError):
        return None

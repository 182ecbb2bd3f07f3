"""Step 6 as a stage: run the acceptance suite on the trained model and the base model, then
evaluate the gates. Writes `acceptance.json` (the report section) and `acceptance.junit.xml`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from llmspec.runtime.engine.atomic import write_json_atomic


def eval_records(dataset_dir: Path, limit: int) -> list[dict]:
    ds = json.loads((dataset_dir / "dataset.json").read_text())
    if not ds.get("eval_path") or limit <= 0:
        return []
    out = []
    with open(dataset_dir / ds["eval_path"], encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line))
            if len(out) >= limit:
                break
    return out


def run_acceptance_stage(compiled: dict[str, Any], *, train_dir: Path, dataset_dir: Path,
                         train_outputs: dict[str, Any], work: Path,
                         progress: Callable[[str, dict], None]) -> dict[str, Any]:
    """Run a Plan's acceptance stage (``compiled``: its compiled config) on a trained model."""
    from llmspec.compiler.acceptance import runtime_suite
    from llmspec.runtime.acceptance.gates import evaluate_gates
    from llmspec.runtime.acceptance.junit import write_junit
    from llmspec.runtime.acceptance.runner import ModelRef, junit_cases, prompt_format_for_style, run_acceptance
    from llmspec.spec.models import AcceptanceGates

    holdout = (compiled.get("holdout") or {}).get("count", 0)
    extra = []
    if compiled.get("feedback_store") is not None:
        from llmspec.runtime.acceptance.feedback_tests import feedback_tests

        extra = feedback_tests(Path(compiled["base_dir"]), compiled["feedback_store"] or None,
                               system=compiled.get("system"), max_new_tokens=compiled.get("max_new_tokens"))
    tests = runtime_suite(compiled, eval_records(dataset_dir, holdout), extra)
    base_path = train_outputs["base_model_path"]
    model_dir = train_dir / train_outputs["model"]
    if train_outputs.get("adapter"):
        tuned = ModelRef(name="fine-tuned", model_path=Path(base_path), adapter_path=model_dir)
    else:
        tuned = ModelRef(name="fine-tuned", model_path=model_dir, adapter_path=None)
    base = (ModelRef(name="base", model_path=Path(base_path), adapter_path=None)
            if compiled["baseline"] != "none" else None)
    progress("acceptance-start", {"tests": len(tests), "baseline": base is not None})
    result = run_acceptance(tests, tuned=tuned, base=base, default_max_new_tokens=compiled["max_new_tokens"],
                            prompt_format=prompt_format_for_style(compiled["style"]),
                            progress=lambda done, total: progress("acceptance-test", {"done": done, "total": total}))
    result.gates = evaluate_gates(AcceptanceGates.model_validate(compiled["gates"]), result,
                                  eval_loss=train_outputs.get("eval_loss"))
    report = result.to_report()
    write_json_atomic(work / "acceptance.json", report)
    write_junit(work / "acceptance.junit.xml", f"{compiled['project']}.acceptance", junit_cases(result))
    return {"pass_rate": report["pass_rate"], "base_pass_rate": report.get("base_pass_rate"),
            "gates": report["gates"], "tests": len(tests)}

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
    extra_suites = []
    retention = run_retention_part(compiled.get("retention") or {}, base_dir=Path(compiled.get("base_dir") or "."),
                                   system=compiled.get("system"), tuned=tuned,
                                   base=ModelRef(name="base", model_path=Path(base_path)), style=compiled["style"],
                                   progress=progress)
    report["retention"] = retention["report"]
    if retention["result"] is not None:
        report["gates"] += report["retention"]["gates"]
        extra_suites.append((f"{compiled['project']}.retention", retention["cases"], retention["properties"]))
    write_json_atomic(work / "acceptance.json", report)
    write_junit(work / "acceptance.junit.xml", f"{compiled['project']}.acceptance", junit_cases(result),
                extra_suites=extra_suites)
    return {"pass_rate": report["pass_rate"], "base_pass_rate": report.get("base_pass_rate"),
            "gates": report["gates"], "tests": len(tests),
            "retention": {k: report["retention"].get(k) for k in ("enabled", "pass_rate", "base_pass_rate", "drop")}}


def run_retention_part(config: dict[str, Any], *, base_dir: Path, system: str | None, tuned, base, style: str,
                       progress: Callable[[str, dict], None]) -> dict[str, Any]:
    """The retention suite on both models when ``config`` (the plan's ``retention`` entry)
    turns it on: the report section, its gates, its JUnit cases."""
    if not config.get("enabled"):
        return {"report": {"enabled": False, "reason": config.get("reason")}, "result": None}
    from llmspec.spec.models import RetentionSpec

    from llmspec.runtime.acceptance.gates import evaluate_retention_gates
    from llmspec.runtime.acceptance.retention import load_retention_suite, retention_junit_cases, run_retention
    from llmspec.runtime.acceptance.runner import prompt_format_for_style

    spec = RetentionSpec(**{k: v for k, v in config.items() if k in RetentionSpec.model_fields and k != "enabled"})
    tests = load_retention_suite(spec.suite, base_dir, system=system, max_new_tokens=spec.max_new_tokens)
    progress("retention-start", {"tests": len(tests), "suite": spec.suite})
    result = run_retention(spec.suite, tests, tuned=tuned, base=base, prompt_format=prompt_format_for_style(style),
                           progress=lambda done, total: progress("retention-test", {"done": done, "total": total}))
    result.gates = evaluate_retention_gates(spec, result)
    report = result.to_report()
    report["reason"] = config.get("reason")
    props = {"retention.pass_rate": round(result.pass_rate, 4),
             "retention.base_pass_rate": round(result.base_pass_rate, 4),
             "retention.drift": round(result.drift.delta, 4)}
    return {"report": report, "result": result, "cases": retention_junit_cases(result), "properties": props}

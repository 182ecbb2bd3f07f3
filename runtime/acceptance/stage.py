"""Step 6 as a stage: run the acceptance suite on the trained model and the base model, then
evaluate the gates. Writes `acceptance.json` (the report section) and `acceptance.junit.xml`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from llmspec.spec.load import LoadedSpec

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


def run_acceptance_stage(loaded: LoadedSpec, *, train_dir: Path, dataset_dir: Path, train_outputs: dict[str, Any],
                         work: Path, progress: Callable[[str, dict], None]) -> dict[str, Any]:
    from llmspec.runtime.acceptance.gates import evaluate_gates
    from llmspec.runtime.acceptance.junit import write_junit
    from llmspec.runtime.acceptance.runner import ModelRef, junit_cases, prompt_format_for_style, run_acceptance
    from llmspec.runtime.acceptance.suite import build_suite

    spec = loaded.spec
    acc = spec.acceptance
    holdout = acc.holdout.count if acc.holdout else 0
    tests = build_suite(acc, loaded.base_dir, system=spec.format.system,
                        eval_records=eval_records(dataset_dir, holdout), feedback_store=spec.serve.log.store)
    base_path = train_outputs["base_model_path"]
    model_dir = train_dir / train_outputs["model"]
    if train_outputs.get("adapter"):
        tuned = ModelRef(name="fine-tuned", model_path=Path(base_path), adapter_path=model_dir)
    else:
        tuned = ModelRef(name="fine-tuned", model_path=model_dir, adapter_path=None)
    base = ModelRef(name="base", model_path=Path(base_path), adapter_path=None) if acc.baseline != "none" else None
    progress("acceptance-start", {"tests": len(tests), "baseline": base is not None})
    result = run_acceptance(tests, tuned=tuned, base=base, default_max_new_tokens=acc.max_new_tokens,
                            prompt_format=prompt_format_for_style(spec.format.style),
                            progress=lambda done, total: progress("acceptance-test", {"done": done, "total": total}))
    result.gates = evaluate_gates(acc.gates, result, eval_loss=train_outputs.get("eval_loss"))
    report = result.to_report()
    write_json_atomic(work / "acceptance.json", report)
    write_junit(work / "acceptance.junit.xml", f"{spec.project}.acceptance", junit_cases(result))
    return {"pass_rate": report["pass_rate"], "base_pass_rate": report.get("base_pass_rate"),
            "gates": report["gates"], "tests": len(tests)}

"""A compiled cleaning plan as text: per step, Polars' own rendering of the lazy query it runs."""

from __future__ import annotations

from llmspec.compiler.cleaning import ORIGIN, CleaningPlan

from .kernels import explain_dtype, explain_step

STEP_NOTES = {
    "redact_pii": "candidate values found by the Rust regex prefilter are validated in Python "
                  "(Luhn, IBAN mod-97, IP parsing, word boundaries); only they are rewritten",
    "dedupe:minhash": "band keys from one-permutation sketches, or from rensa (Rust) signatures "
              "when few rows collide; candidate pairs verified by exact Jaccard and joined by a "
              "vectorised union-find; sketch and Jaccard as compiled loops once the work is "
              "worth loading them",
    "length": "token bounds use the model tokenizer when known, else ceil(chars / 4)",
}


def explain_plan(plan: CleaningPlan) -> str:
    """The plan as text: per step, Polars' own rendering of the lazy query it runs."""
    import polars as pl

    schema = {c: explain_dtype(plan.types.get(c, "unknown")) for c in plan.columns}
    schema[ORIGIN] = pl.String
    lines = [f"cleaning plan for source '{plan.source}'",
             "columns: " + ", ".join(f"{c} ({plan.types.get(c, 'unknown')})" for c in plan.columns), ""]
    if not plan.steps:
        lines.append("no rules apply to this source")
    for n, step in enumerate(plan.steps, 1):
        cols = ", ".join(step.columns) if step.columns else "(none)"
        lines.append(f"{n}. {step.reason}: {step.kind} [{step.action}] quality.rules[{step.index}] "
                     f"on {cols}")
        shown = {k: v for k, v in step.args.items() if v is not None}
        if shown:
            lines.append("   args: " + ", ".join(f"{k}={v!r}" for k, v in shown.items()))
        lf = explain_step(pl.LazyFrame(schema=schema), step, schema)
        lines.extend("   " + ln for ln in lf.explain(optimized=False).splitlines())
        note = STEP_NOTES.get(step.kind if step.kind != "dedupe" else f"dedupe:{step.args['method']}")
        if note:
            lines.append(f"   note: {note}")
        lines.append("")
    for s in plan.skipped:
        lines.append(f"skipped quality.rules[{s['index']}] ({s['reason']}): source lacks "
                     f"{', '.join(s['missing'])} (skip_missing_columns)")
    return "\n".join(lines).rstrip() + "\n"

"""`llmspec compile SPEC --out DIR`: everything training would use, written for review, no training.

DIR/axolotl.yaml            the complete Axolotl config (checked with Axolotl's own schema)
DIR/data/train.jsonl, eval.jsonl, origins.jsonl, rejects.parquet, dataset.json
DIR/clean/<source>.txt      the cleaning plan of each source (Polars steps)
DIR/acceptance.json         the acceptance suite, prompts rendered as training renders them
DIR/plan.json               compiled parts, estimates and a few rendered examples
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click

from llmspec.compiler.estimates import PREFERENCE_TIME_NOTE

PREVIEW_EXAMPLES = 3


@click.command("compile")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the Axolotl config, datasets, cleaning plans and plan.json into.")
@click.option("--examples", "n_examples", default=PREVIEW_EXAMPLES, show_default=True,
              help="Rendered examples (trained tokens marked) to put in plan.json and print.")
def compile_command(spec: Path, out: Path, n_examples: int) -> None:
    """Write the Axolotl config, datasets, cleaning plans, acceptance suite and plan. No training."""
    summary = compile_project(spec, out, n_examples=n_examples)
    _print_summary(summary, out)


# ----------------------------------------------------------------------------- the work


def compile_project(spec_path: Path, out: Path, *, n_examples: int = PREVIEW_EXAMPLES) -> dict[str, Any]:
    """Compile ``spec_path`` into ``out``; return what plan.json holds. Raises LlmspecError.

    The sources, cleaning and dataset stages are the Plan's, built (or reused) by apply's
    executor; the training config is the train stage's, made concrete by the same function
    apply trains with. Only the folders differ: here they are ``out``."""
    from llmspec.api import make_plan, run_stages
    from llmspec.compiler.acceptance import runtime_suite
    from llmspec.compiler.estimates import TokenStats, count_tokens, estimate, parameters_for
    from llmspec.compiler.formatting import FormatPlan
    from llmspec.runtime.clean.run import StreamResult
    from llmspec.runtime.dataset.build import DatasetResult
    from llmspec.runtime.train.axolotl_check import axolotl_available, validate_axolotl_config
    from llmspec.runtime.train.config_file import write_training_config
    from llmspec.runtime.train.run import prepare_training
    from llmspec.spec.errors import SpecError

    report = make_plan(spec_path, for_apply=True, check_training=False)
    plan = report.plan
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    executor = run_stages(report, ["dataset"], label="compile")

    clean_dir = out / "clean"
    clean_dir.mkdir(parents=True, exist_ok=True)
    clean_summary = {}
    for stage in plan.stages:
        if stage.kind == "clean":
            built = executor.stage_dir(stage.id)
            shutil.copyfile(built / "plan.txt", clean_dir / f"{stage.name}.txt")
            source = json.loads((executor.stage_dir(f"sources.{stage.name}") / "source.json").read_text())
            clean_summary[stage.name] = StreamResult.load(built).to_dict() | {
                "extra_columns": source.get("extra_columns") or {}}
    data_dir = out / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    shutil.copytree(executor.stage_dir("dataset"), data_dir)
    result = DatasetResult.load(data_dir)

    train = plan.stage("train").executable()
    base = train["base_model"]
    model_path = executor.model_path(base)
    training = prepare_training(train, model_path=model_path, dataset_dir=data_dir, work=out)
    write_training_config(training)
    problems = validate_axolotl_config(training, plan.locate)

    tokenizer = executor.tokenizer(base)
    fmt_plan = FormatPlan.from_dict(plan.stage("dataset").compiled["format"])
    spec = report.loaded.spec
    if result.token_counts:  # measured by the dataset stage, as Axolotl tokenizes: exact
        tokens = TokenStats(train=result.token_counts["train"], eval=result.token_counts["eval"], method="tokenizer")
    else:
        tokens = count_tokens(result.train_path, result.eval_path, _record_counter(tokenizer, fmt_plan, spec))
    estimates = estimate(result, spec.training, training.hardware, tokens,
                         model_params=parameters_for(base["id"], model_path))

    examples = _preview(tokenizer, fmt_plan, result, spec, n_examples)
    acc = plan.stage("acceptance").executable()
    holdout = (acc.get("holdout") or {}).get("count", 0)
    suite = _acceptance(acc, runtime_suite(acc, _read_records(result.eval_path, holdout)), fmt_plan, tokenizer)
    _write_json(out / "acceptance.json", suite)

    summary = {
        "format_version": 1,
        "kind": "llmspec-compile",
        "project": plan.project,
        "spec": str(Path(spec_path)),
        "base_model": {"id": base["id"], "path": model_path},
        "clean": clean_summary,
        "format": fmt_plan.to_dict(),
        "dataset": result.to_dict(),
        "training": training.to_dict(),
        "axolotl_check": ("failed" if problems else "passed") if axolotl_available() else "skipped (no axolotl)",
        "estimates": estimates,
        "examples": [e.to_dict() for e in examples],
        "acceptance_tests": len(suite["tests"]),
    }
    _write_json(out / "plan.json", summary)
    if problems:
        # The files stay for inspection; the command still fails, as apply would.
        raise SpecError(problems)
    summary["_rendered"] = examples
    return summary


def _write_json(path: Path, data: Any) -> None:
    from llmspec.runtime.engine.atomic import write_json_atomic

    write_json_atomic(path, data)


def _record_counter(tokenizer, fmt_plan, spec):
    """Tokens of a record as Axolotl will tokenize it (its prompt strategy), else plain tokenizer."""
    if tokenizer is None:
        return None
    from llmspec.runtime.dataset.preview import axolotl_strategy, tokenize_record

    try:
        strategy = axolotl_strategy(tokenizer, fmt_plan, sequence_len=spec.training.sequence_len,
                                    chat_template=spec.base_model.chat_template)
    except Exception:  # a template the tokenizer cannot render: fall back, the check reports it elsewhere
        strategy = None
    if strategy is not None:
        return lambda record: len(tokenize_record(strategy, fmt_plan, record)[0])
    from llmspec.compiler.formatting import example_text

    return lambda record: len(tokenizer(example_text(record), add_special_tokens=False)["input_ids"])


def _read_records(path: Path | None, limit: int) -> list[dict]:
    records: list[dict] = []
    if path is None:
        return records
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if len(records) >= limit:
                break
            records.append(json.loads(line))
    return records


def _origins(result, split: str, limit: int) -> list[str]:
    out = []
    with open(result.origins_path, encoding="utf-8") as fh:
        for line in fh:
            o = json.loads(line)
            if o["split"] == split:
                out.append(f"{o['source']}:{o['origin']}")
                if len(out) >= limit:
                    break
    return out


def _preview(tokenizer, fmt_plan, result, spec, n: int) -> list:
    if tokenizer is None or n <= 0:
        return []
    from llmspec.runtime.dataset.preview import render_examples

    records = _read_records(result.train_path, n)
    return render_examples("", fmt_plan, records, n, origins=_origins(result, "train", n),
                           sequence_len=spec.training.sequence_len,
                           chat_template=spec.base_model.chat_template, tokenizer=tokenizer)


def _acceptance(acc: dict[str, Any], tests, fmt_plan, tokenizer) -> dict[str, Any]:
    from llmspec.runtime.dataset.preview import render_conversation

    rendered = []
    for t in tests:
        item = t.to_dict()
        item["rendered_prompt"] = (render_conversation(tokenizer, fmt_plan, t.conversation(),
                                                       chat_template=acc.get("chat_template"))
                                   if tokenizer is not None else None)
        rendered.append(item)
    return {
        "format_version": 1,
        "style": fmt_plan.style,
        "chat_template": acc.get("chat_template"),
        "system": acc.get("system"),
        "note": None if tokenizer is not None else "base model tokenizer not available here: prompts not rendered",
        "gates": acc["gates"],
        "tests": rendered,
    }


# ----------------------------------------------------------------------------- output


def _print_summary(plan: dict[str, Any], out: Path) -> None:
    ds, est = plan["dataset"], plan["estimates"]
    click.echo(f"Compiled {plan['project']} into {out}/")
    click.echo(f"  axolotl.yaml         Axolotl check: {plan['axolotl_check']}")
    rejected = ", ".join(f"{k} {v}" for k, v in ds["rejected"].items()) or "none"
    kept = sum(c["rows_kept"] for c in plan["clean"].values())
    click.echo(f"  clean/               {len(plan['clean'])} cleaning plan(s); {kept} row(s) kept")
    click.echo(f"  data/                train {ds['train_size']}, eval {ds['eval_size']}, "
               f"leakage removed {ds['leakage_removed']}, format rejects: {rejected}")
    click.echo(f"  acceptance.json      {plan['acceptance_tests']} test(s)")
    tok = est["tokens"]
    approx = "" if tok["method"] == "tokenizer" else " (approx: chars/4)"
    measured = ds.get("tokens") or {}
    fit = (f"{measured.get('truncated', 0)} truncated to fit, {ds['rejected'].get('too_long', 0)} rejected as "
           "too_long (as Axolotl tokenizes)" if measured else f"{tok['over_sequence_len']} over sequence_len")
    click.echo(f"  tokens               train {tok['train']}{approx}, mean {tok['mean_per_example']}/example, {fit}")
    steps = est["steps"]
    click.echo(f"  steps                {steps['per_epoch']}/epoch, {steps['total']} total "
               f"(effective batch {steps['effective_batch']})")
    for cls, t in est.get("time", {}).items():
        click.echo(f"  time on {cls:<12} ~{t['human']} ({t['tokens_per_second']} tokens/s, rough)")
    if est.get("time") and PREFERENCE_TIME_NOTE in est.get("time_note", ""):
        click.echo(f"                       ({PREFERENCE_TIME_NOTE})")
    for ex in plan.get("_rendered", [])[:3]:
        click.echo(f"\n  example {ex.origin or ''} ({ex.n_trained}/{ex.n_tokens} tokens trained, [[...]]):")
        for line in ex.plain().splitlines() or [""]:
            click.echo(f"    {line}")


__all__ = ["compile_command", "compile_project"]

"""`llmspec compile SPEC --out DIR`: everything training would use, written for review, no training.

DIR/axolotl.yaml            the complete Axolotl config (checked with Axolotl's own schema)
DIR/data/train.jsonl, eval.jsonl, origins.jsonl, rejects.parquet, dataset.json
DIR/clean/<source>.txt      the cleaning plan of each source (Polars steps)
DIR/acceptance.json         the acceptance suite, prompts rendered as training renders them
DIR/plan.json               compiled parts, estimates and a few rendered examples
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

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
    """Compile ``spec_path`` into ``out``; return what plan.json holds. Raises LlmspecError."""
    from llmspec.api import load_spec
    from llmspec.compiler.axolotl_config import compile_axolotl_config, resolve_hardware
    from llmspec.compiler.estimates import TokenStats, count_tokens, estimate, parameters_for
    from llmspec.compiler.formatting import compile_format
    from llmspec.runtime.train.axolotl_check import axolotl_available, validate_axolotl_config
    from llmspec.runtime.dataset.build import build_dataset
    from llmspec.runtime.train.run import resolve_model
    from llmspec.spec.errors import SpecError

    loaded = load_spec(spec_path)
    spec = loaded.spec
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    model_path, _ = resolve_model(loaded)
    tokenizer = _tokenizer(spec.base_model.tokenizer or model_path, loaded.base_dir)
    frames, clean_summary = _clean_sources(loaded, out / "clean", tokenizer)

    columns = {n: [c for c in f.columns if c != "_origin"] for n, f in frames.items()}
    fmt_plan = compile_format(spec.format, columns, locate=loaded.locate)
    special = ({"bos_token": tokenizer.bos_token or "", "eos_token": tokenizer.eos_token or ""}
               if tokenizer is not None else None)
    data_dir = out / "data"
    from llmspec.runtime.dataset.lengths import check_for

    lengths = check_for(loaded, fmt_plan, tokenizer) if tokenizer is not None else None
    result = build_dataset(frames, fmt_plan, spec.split, data_dir, special_tokens=special, lengths=lengths)
    _write_json(data_dir / "dataset.json", result.to_dict())
    rejects_path = data_dir / "rejects.parquet"
    if result.rejects.height:
        result.rejects.write_parquet(rejects_path)
    elif rejects_path.exists():
        rejects_path.unlink()

    hardware = resolve_hardware(spec.training.hw)
    compiled = compile_axolotl_config(spec, model_path=model_path, dataset=result.paths, run_dir=out,
                                      format_plan=fmt_plan, hardware=hardware)
    from llmspec.runtime.train.config_file import write_training_config

    write_training_config(compiled)
    problems = validate_axolotl_config(compiled, loaded.locate)

    if result.token_counts:  # measured by the dataset stage, as Axolotl tokenizes: exact
        tokens = TokenStats(train=result.token_counts["train"], eval=result.token_counts["eval"], method="tokenizer")
    else:
        tokens = count_tokens(result.train_path, result.eval_path, _record_counter(tokenizer, fmt_plan, spec))
    estimates = estimate(result, spec.training, hardware, tokens,
                         model_params=parameters_for(spec.base_model.id, model_path))

    examples = _preview(tokenizer, fmt_plan, result, spec, n_examples)
    suite = _acceptance(loaded, fmt_plan, result, tokenizer)
    _write_json(out / "acceptance.json", suite)

    plan = {
        "format_version": 1,
        "kind": "llmspec-compile",
        "project": spec.project,
        "spec": str(Path(spec_path)),
        "base_model": {"id": spec.base_model.id, "path": model_path},
        "clean": clean_summary,
        "format": fmt_plan.to_dict(),
        "dataset": result.to_dict(),
        "training": compiled.to_dict(),
        "axolotl_check": ("failed" if problems else "passed") if axolotl_available() else "skipped (no axolotl)",
        "estimates": estimates,
        "examples": [e.to_dict() for e in examples],
        "acceptance_tests": len(suite["tests"]),
    }
    _write_json(out / "plan.json", plan)
    if problems:
        # The files stay for inspection; the command still fails, as apply would.
        raise SpecError(problems)
    plan["_rendered"] = examples
    return plan


def _write_json(path: Path, data: Any) -> None:
    from llmspec.runtime.engine.atomic import write_json_atomic

    write_json_atomic(path, data)


def _tokenizer(source: str, base_dir: Path):
    """The base model's tokenizer if it is on this machine, else None (estimates then approximate)."""
    local = Path(source) if Path(source).is_absolute() else base_dir / source
    try:
        from llmspec.runtime.dataset.preview import load_tokenizer

        return load_tokenizer(str(local) if local.is_dir() else source)
    except ImportError:
        return None
    except (OSError, ValueError):  # not cached locally: we never download
        return None


def _clean_sources(loaded, clean_dir: Path, tokenizer) -> tuple[dict, dict[str, Any]]:
    from llmspec.compiler.cleaning import compile_cleaning
    from llmspec.runtime.clean.explain import explain_plan
    from llmspec.runtime.clean.run import check_gates, run_cleaning
    from llmspec.runtime.sources import read_source
    from llmspec.runtime.sources.expect import check_expectations
    from llmspec.spec.errors import DataError

    spec = loaded.spec
    clean_dir.mkdir(parents=True, exist_ok=True)
    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    frames, results, summary = {}, {}, {}
    for name, src in spec.sources.items():
        batch = read_source(name, src, loaded.base_dir, env=os.environ)
        errors = [d for d in check_expectations(batch, src) if d.severity == "error"]
        if errors:
            for d in errors:
                d.pos = d.pos or loaded.locate(("sources", name, "expect"))
            raise DataError(errors)
        plan = compile_cleaning(spec.quality, name, [c for c in batch.rows.columns if c != "_origin"],
                                locate=loaded.locate)
        (clean_dir / f"{name}.txt").write_text(explain_plan(plan), encoding="utf-8")
        result = run_cleaning(batch, plan, count_tokens=count if tokenizer is not None else None)
        frames[name], results[name] = result.kept, result
        summary[name] = result.to_dict() | {"extra_columns": batch.extra_columns}
    gate_errors = [d for d in check_gates(results, spec.quality) if d.severity == "error"]
    if gate_errors:
        raise DataError(gate_errors)
    return frames, summary


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


def _acceptance(loaded, fmt_plan, result, tokenizer) -> dict[str, Any]:
    from llmspec.runtime.acceptance.suite import build_suite
    from llmspec.runtime.dataset.preview import render_conversation

    spec = loaded.spec
    holdout = spec.acceptance.holdout.count if spec.acceptance.holdout else 0
    eval_records = _read_records(result.eval_path, holdout)
    tests = build_suite(spec.acceptance, loaded.base_dir, system=spec.format.system, eval_records=eval_records)
    rendered = []
    for t in tests:
        item = t.to_dict()
        item["rendered_prompt"] = (render_conversation(tokenizer, fmt_plan, t.conversation(),
                                                       chat_template=spec.base_model.chat_template)
                                   if tokenizer is not None else None)
        rendered.append(item)
    return {
        "format_version": 1,
        "style": fmt_plan.style,
        "chat_template": spec.base_model.chat_template if fmt_plan.style == "chat" else None,
        "system": spec.format.system,
        "note": None if tokenizer is not None else "base model tokenizer not available here: prompts not rendered",
        "gates": spec.acceptance.gates.model_dump(mode="json"),
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
    for ex in plan.get("_rendered", [])[:3]:
        click.echo(f"\n  example {ex.origin or ''} ({ex.n_trained}/{ex.n_tokens} tokens trained, [[...]]):")
        for line in ex.plain().splitlines() or [""]:
            click.echo(f"    {line}")


__all__ = ["compile_command", "compile_project"]

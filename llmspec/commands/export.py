"""`llmspec export`: the promoted (or a given) run as an adapter, merged weights, an Ollama model
or a GGUF file, checked for parity with the adapter as trained."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["adapter", "merged", "ollama", "gguf"]), required=True,
              help="adapter: PEFT adapter + tokenizer + template; merged: full weights; ollama: merged + Modelfile; "
                   "gguf: one GGUF file (llama architecture) + Modelfile.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder to write.")
@click.option("--run", "run_id", help="Export this run instead of the promoted one.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16", "q8_0"]), default="auto",
              show_default=True, help="Weights' dtype for merged/ollama/gguf (auto: the base model's); "
                                      "q8_0: GGUF's 8-bit quantization, gguf only.")
@click.option("--min-identical", default=1.0, show_default=True, type=click.FloatRange(0, 1),
              help="Parity tolerance: the share of acceptance prompts whose greedy answers must be identical.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def export_command(spec: Path, fmt: str, out: Path, run_id: str | None, dtype: str, min_identical: float,
                   force: bool) -> None:
    """Export the model. Parity always runs: the export answers the acceptance prompts greedily and
    must match the adapter as trained; otherwise exit 3 and nothing is written."""
    from llmspec.api import load_spec
    from llmspec.runtime.export.export import export_model
    from llmspec.runtime.serve.target import resolve_run

    loaded = load_spec(spec)
    run = resolve_run(loaded, run_id)
    result = export_model(loaded, run, fmt, out, dtype=dtype, min_identical=min_identical, force=force,
                          say=lambda m: click.echo(m, err=True))
    click.echo(result.summary())
    click.echo(f"Exported run {run.run} as {fmt} to {out}")
    if fmt in ("ollama", "gguf"):
        click.echo(f"Create it with: ollama create {loaded.spec.project} -f {out / 'Modelfile'}")
    if fmt == "gguf":
        click.echo(f"Or run it with llama.cpp: llama-cli -m {out / 'model.gguf'} -cnv")

"""`llmspec plan`: what an apply would do, and why, for review before anything runs."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("plan")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True, help="markdown fits a pull-request comment; json carries a format_version.")
@click.option("--against", metavar="REV", help="Diff against the spec at git revision REV (or another spec file) "
              "instead of the project state: the review of a spec change, no state needed.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there is nothing to do, 2 when there are "
              "changes, 1 on error.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the plan; `llmspec apply FILE` applies exactly it, or refuses if anything moved.")
@click.option("--examples", "n_examples", type=click.IntRange(min=0), default=0, metavar="N",
              help="Also show N training examples as the model sees them, trained tokens in [[...]] "
              "(from the last built dataset).")
def plan_command(spec: Path, fmt: str, against: str | None, detailed_exitcode: bool, out: Path | None,
                 n_examples: int) -> None:
    """Show what `apply` would rebuild, retrain and re-test, and why."""
    from llmspec.api import make_plan
    from llmspec.cli import print_diagnostics

    if out is not None and against is not None:
        raise click.UsageError("-o saves a plan to apply, which compares with this machine's state: "
                               "it cannot be combined with --against")
    # A saved plan is applied later, so it is the plan apply would run: compared with what is
    # built here (never llmspec.lock, which apply does not build from).
    report = make_plan(spec, against=against, for_apply=out is not None)
    print_diagnostics(report.warnings)
    if fmt == "json":
        click.echo(report.json())
    elif fmt == "markdown":
        click.echo(report.markdown())
    else:
        from ._console import make_console

        console = make_console(highlight=False, soft_wrap=True)
        console.print(report.text(color=console.is_terminal), markup=console.is_terminal)
    if n_examples:
        _show_examples(report, n_examples)
    if out is not None:
        import json

        from llmspec.runtime.engine.atomic import write_text_atomic

        write_text_atomic(out, json.dumps(report.saved(), indent=2, ensure_ascii=False) + "\n")
        click.echo(f"Saved this plan to {out}. Apply exactly it with: llmspec apply {out}", err=True)
    if detailed_exitcode:
        sys.exit(2 if report.diff.has_changes else 0)


def _show_examples(report, n: int) -> None:
    """The first N examples of the last built dataset, tokenized the way Axolotl will."""
    import json

    from llmspec.api import state_root
    from llmspec.compiler.formatting import FormatPlan
    from llmspec.runtime.dataset.preview import render_examples
    from llmspec.runtime.engine.state import State
    from llmspec.runtime.models.resolve import resolve_base_model

    loaded = report.loaded
    root = state_root(loaded)
    record = State.load(root).stages.get("dataset") if (root / "state.json").exists() else None
    if record is None:
        click.echo("\nExamples: none built yet (run `llmspec apply`, or `llmspec compile` to preview).")
        return
    stage_dir = root / record.outputs["dir"]
    summary = json.loads((stage_dir / "dataset.json").read_text())
    with open(stage_dir / summary["train_path"], encoding="utf-8") as fh:
        records = [json.loads(line) for _, line in zip(range(n), fh)]
    dataset = report.plan.stage("dataset").compiled
    shown = render_examples(resolve_base_model(report.plan.base_model, loaded.base_dir, report.plan.locate),
                            FormatPlan.from_dict(dataset["format"]), records, n,
                            sequence_len=dataset["sequence_len"], chat_template=dataset["chat_template"])
    click.echo(f"\n{len(shown)} training examples as the model sees them ([[...]] is what it learns to write):")
    for i, example in enumerate(shown, 1):
        click.echo(f"--- example {i}")
        click.echo(example.plain())

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
def plan_command(spec: Path, fmt: str, against: str | None, detailed_exitcode: bool, out: Path | None) -> None:
    """Show what `apply` would rebuild, retrain and re-test, and why."""
    from llmspec.api import make_plan

    report = make_plan(spec, against=against)
    if fmt == "json":
        click.echo(report.json())
    elif fmt == "markdown":
        click.echo(report.markdown())
    else:
        from rich.console import Console

        console = Console(highlight=False, soft_wrap=True)
        console.print(report.text(color=console.is_terminal), markup=console.is_terminal)
    if out is not None:
        import json

        from llmspec.runtime.atomic import write_text_atomic

        write_text_atomic(out, json.dumps(report.saved(), indent=2, default=str) + "\n")
        click.echo(f"Saved this plan to {out}. Apply exactly it with: llmspec apply {out}", err=True)
    if detailed_exitcode:
        sys.exit(2 if report.diff.has_changes else 0)

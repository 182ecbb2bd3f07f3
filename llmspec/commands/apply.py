"""`llmspec apply`: print the plan, confirm, run only the stale stages, report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from llmspec.spec.errors import AcceptanceFailed, Diagnostic, Pos, StateError


@click.command("apply")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (required off a terminal).")
def apply_command(target: Path, yes: bool) -> None:
    """Apply a spec (or a plan saved with `plan -o`): clean, dataset, train, test, promote."""
    from ._console import make_console

    from llmspec.api import check_saved_plan, load_saved_plan, make_plan, run_apply
    from llmspec.cli import print_diagnostics

    from ._progress import ApplyProgress

    console = make_console(highlight=False, soft_wrap=True)
    saved = load_saved_plan(target)
    if saved is not None:
        report = make_plan(saved.spec_path, for_apply=True)
        moved = check_saved_plan(saved, report)
        if moved:
            raise StateError(Diagnostic("stale-plan", "the saved plan no longer matches: " + "; ".join(moved),
                                        Pos(str(target)), hint="make a new plan: llmspec plan SPEC -o FILE"))
    else:
        report = make_plan(target, for_apply=True)
    print_diagnostics(report.warnings)
    console.print(report.text(color=console.is_terminal), markup=console.is_terminal)
    if not report.diff.to_run:
        console.print("Nothing to do: every stage is up to date.")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("not a terminal: pass --yes to apply without confirmation")
        if not click.confirm("Apply this plan?", default=False):
            raise click.exceptions.Abort()
    progress = ApplyProgress(console)
    try:
        with progress:
            result = run_apply(report, progress=progress.event)
    except AcceptanceFailed as exc:
        result = getattr(exc, "result", None)
        if result is not None:
            _finish(console, result)
        console.print(f"[red]Acceptance gates failed: run {result.run if result else ''} is not promoted; "
                      "the promoted run is unchanged.[/]" if console.is_terminal else
                      "Acceptance gates failed: the run is not promoted; the promoted run is unchanged.")
        raise
    _finish(console, result)


def _finish(console, result) -> None:
    from llmspec.runtime.reports.terminal import print_summary

    print_summary(result.report, console)
    console.print(f"Run {result.run}: {result.outcome} "
                  f"({len(result.built)} stages built, {len(result.reused)} reused).")
    html = result.run_dir / "report.html"
    if html.exists():
        console.print(f"Report: {html}")

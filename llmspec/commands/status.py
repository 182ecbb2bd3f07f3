"""`llmspec status`: the promoted run, the last run, and which stages are fresh or stale."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("status")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_command(spec: Path, as_json: bool) -> None:
    """Show the promoted run, the last run and each stage's freshness."""
    from llmspec.api import status

    info = status(spec)
    if not as_json:
        from llmspec.cli import print_diagnostics
        from llmspec.spec.errors import Diagnostic

        print_diagnostics([Diagnostic.from_json(w) for w in info["warnings"]])
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    promoted = info["promoted"]
    click.echo(f"project:  {info['project']}")
    click.echo(f"promoted: {promoted['run']} ({promoted['model_path']})" if promoted else "promoted: none")
    last = info["last_run"]
    click.echo(f"last run: {last['run']} {last['outcome']} at {last['when']}" if last else "last run: none")
    for stage, fresh in info["stages"].items():
        click.echo(f"  {'=' if fresh == 'fresh' else '~'} {stage:<24} {fresh}")
    click.echo(info["summary"])

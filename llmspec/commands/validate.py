"""`llmspec validate` and `llmspec schema`: the pre-commit path, so nothing heavy is imported."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from llmspec.spec.errors import Diagnostic


@click.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-q", "--quiet", is_flag=True, help="Print only errors (no warnings, no summary).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: the diagnostics as a JSON list, for editors and CI.")
def validate_command(files: tuple[Path, ...], quiet: bool, fmt: str) -> None:
    """Check one or more spec files and report every problem of every file."""
    _skip_pydantic_plugins()
    from llmspec.cli import print_diagnostics
    from llmspec.spec.load import check_spec

    all_diags: list[Diagnostic] = []
    failed = 0
    for path in files:
        result = check_spec(path)
        diags = result.errors if quiet else result.diagnostics
        all_diags.extend(diags)
        if result.errors:
            failed += 1
        if fmt == "text":
            print_diagnostics(diags)
            if not quiet and not result.errors:
                click.echo(f"{result.display_path}: ok" + (f" ({len(result.warnings)} warnings)"
                                                          if result.warnings else ""))
    if fmt == "json":
        click.echo(json.dumps([d.to_json() for d in all_diags], indent=2))
    elif not quiet and len(files) > 1:
        click.echo(f"{len(files) - failed} of {len(files)} files valid", err=bool(failed))
    raise SystemExit(1 if failed else 0)


def _skip_pydantic_plugins() -> None:
    # Before the first model is built, pydantic scans the entry points of every installed
    # distribution for plugins: ~150 ms in a venv holding torch and axolotl, the largest single
    # cost of this hook after the models themselves. Plugins only observe validation (tracing),
    # so the hook runs without them unless the user asks for them by setting the variable.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


@click.command("schema")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
def schema_command(output: Path | None) -> None:
    """Print the JSON Schema (draft 2020-12) of llmspec.yaml, for editors and CI."""
    from llmspec.spec.schema import schema_text

    text = schema_text()
    if output is None:
        click.echo(text, nl=False)
        return
    from llmspec.runtime.engine.atomic import write_text_atomic

    write_text_atomic(output, text)
    click.echo(f"wrote {output}", err=True)
